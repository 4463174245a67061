// DirectorRouter: a Dovecot director ring (docs/operations.md, "Dovecot director"), as a move
// inside one storage group needs it. The director keeps each user on one backend of a group
// that shares one mail root; reassigning a user is the whole move, no mail is copied.
//
// Contracts:
//  - Backends are named by the IP the director knows them by ([[server]] director_host).
//  - move() is idempotent: moving a user to the backend it is on changes nothing.
//  - Errors: kUnavailable / kTimeout (the director cannot be reached: retry), kNotFound (the
//    director does not know the backend), kPermission (credentials refused), kCorrupt (an
//    answer that is not the director's). Every call blocks for at most the configured timeout.
// Thread-safety: one instance per thread.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace mailshard {

struct DirectorBackend {
  std::string host;   // the backend's IP ("mail server ip")
  std::string state;  // "up" or "down"
  int vhosts = 0;     // its weight in the hash ring
  int users = 0;      // users the director maps to it now
};

struct DirectorUserStatus {
  std::string current;  // the backend the user is mapped to now; "" = no mapping (the hash decides)
  std::string hashed;   // the backend the user's hash picks when there is no mapping
  std::string expires;  // when the current mapping expires, as the director prints it; "" = none
};

class DirectorRouter {
 public:
  virtual ~DirectorRouter() = default;
  // Where the director reaches (for messages), e.g. "director http://10.0.0.30:8080/doveadm/v1".
  virtual std::string describe() const = 0;
  // Every backend of the ring (doveadm director status).
  virtual Result<std::vector<DirectorBackend>> backends() = 0;
  // The user's mapping (doveadm director status USER).
  virtual Result<DirectorUserStatus> user_status(const std::string& user) = 0;
  // Maps the user to `host` (doveadm director move USER HOST): the director ends the user's
  // proxied sessions, holds new logins until the old backend is done, then routes them to
  // `host`. kNotFound when the director does not know `host`.
  virtual Status move(const std::string& user, const std::string& host) = 0;
  // Ends the user's proxied sessions (doveadm director kick USER). No session is success.
  virtual Status kick(const std::string& user) = 0;
};

}  // namespace mailshard
