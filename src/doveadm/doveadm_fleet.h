// DoveadmFleet: the doveadm HTTP API of every configured server, as the move
// needs it: a SessionKicker (kick + who), a MailboxStatusSource and a
// QuotaService (quotaGet, quotaRecalc).
// Servers without a doveadm_url answer kUnsupported.
#pragma once

#include <map>
#include <string>

#include "core/config.h"
#include "core/freeze_backend.h"
#include "core/mailbox_status.h"
#include "core/quota_service.h"
#include "doveadm/doveadm_client.h"

namespace mailshard {

class DoveadmFleet final : public SessionKicker, public MailboxStatusSource, public QuotaService {
 public:
  explicit DoveadmFleet(const Config& config, int64_t timeout_ms = 10'000);

  std::string_view name() const override { return "doveadm"; }
  // doveadm kick on `server`; no session is success.
  Status kick(const std::string& user, const std::string& server) override;
  // Connections of `user` on `server` according to doveadm who.
  Result<int> sessions(const std::string& user, const std::string& server) override;
  Result<std::vector<MailboxStatusInfo>> mailbox_status(const std::string& user, const std::string& server) override;
  Result<std::vector<MailboxContents>> mailbox_contents(const std::string& user, const std::string& server) override;
  Result<std::vector<MailboxMessage>> messages_from(const std::string& user, const std::string& server,
                                                    const std::string& mailbox, int64_t from_uid) override;
  Status import_messages(const std::string& user, const std::string& server, const std::string& source_location,
                         const std::string& mailbox, const std::string& uid_set) override;
  // quotaGet on `server`; kUnsupported also when the server has no quota
  // plugin (doveadm does not know the command).
  Result<std::vector<QuotaRoot>> quota(const std::string& user, const std::string& server) override;
  Status recalc_quota(const std::string& user, const std::string& server) override;

 private:
  Result<const DoveadmClient*> client(const std::string& server);
  std::map<std::string, Result<DoveadmClient>> clients_;
};

}  // namespace mailshard
