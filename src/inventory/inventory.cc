#include "inventory/inventory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/freeze_value.h"
#include "core/mail_location.h"
#include "directory/ldap_directory.h"
#include "inventory/mailbox_sizers.h"
#include "inventory/metrics_sources.h"
#include "transport/transport_factory.h"
#include "util/interrupt.h"
#include "util/progress.h"
#include "util/strings.h"

namespace mailshard {
namespace {

// Runs fn(i) for i in [0, n) on at most `threads` threads; stops handing out
// work after Ctrl-C.
template <typename Fn>
void parallel_for(size_t n, int threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    while (!interrupted()) {
      size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      fn(i);
    }
  };
  size_t t = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), n);
  if (t <= 1) {
    worker();
    return;
  }
  std::vector<std::thread> pool;
  for (size_t k = 0; k < t; ++k) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
}

bool sizes_from_disk(SizeSource s) { return s == SizeSource::kScan || s == SizeSource::kMaildirsize; }

void fill_capacity(ServerReport& s, const ServerConfig& cfg) {
  const ServerMetrics& m = s.metrics;
  s.capacity_overridden = cfg.capacity_bytes > 0;
  if (s.capacity_overridden) {
    // Several servers may share one disk (the lab does): the disk's used bytes
    // are not this server's, so only its own mail counts as used.
    s.capacity_bytes = cfg.capacity_bytes;
    s.used_bytes = s.mail_bytes;
    s.free_bytes = std::max<int64_t>(0, std::min(s.capacity_bytes - s.used_bytes, m.fs_avail_bytes));
  } else {
    s.capacity_bytes = m.fs_size_bytes;
    s.used_bytes = std::max<int64_t>(0, m.fs_size_bytes - m.fs_avail_bytes);
    s.free_bytes = m.fs_avail_bytes;
  }
  s.other_used_bytes = std::max<int64_t>(0, s.used_bytes - s.mail_bytes);
  s.utilisation = s.capacity_bytes > 0 ? static_cast<double>(s.used_bytes) / static_cast<double>(s.capacity_bytes) : 0;
  s.load_capacity = cfg.load_capacity > 0 ? cfg.load_capacity : (m.cpus > 0 ? m.cpus : 1);
}

}  // namespace

int Inventory::failed_servers() const {
  int n = 0;
  for (const auto& s : servers) n += s.failed ? 1 : 0;
  return n;
}

int64_t Inventory::user_errors() const {
  int64_t n = 0;
  for (const auto& u : users) n += u.error.empty() ? 0 : 1;
  return n;
}

namespace {

// Whether a scan's message count means anything on this server: its mail is
// Maildir (Dovecot's or Courier's), or the whole home is the mailbox.
bool maildir_counts(const ServerConfig& server) {
  if (server.mail_location.empty()) return true;
  auto loc = parse_mail_location(server.mail_location);
  return loc.ok() && !moved_through_doveadm(loc->format);
}

// With size_source = "scan": the trees a server's mail_location keeps
// outside the home (INDEX=, CONTROL=, ...) count with the user, since a move
// carries them too. Each server's trees are sized where its home is (here,
// or by its agent); a tree that cannot be sized is a note, not an error (the
// home's size stands).
void size_outside_trees(const Config& config, Inventory& inv, const std::vector<size_t>& to_size, MailboxSizer& sizer,
                        const std::vector<std::unique_ptr<Transport>>& agents, int threads,
                        std::vector<std::vector<std::string>>& user_notes) {
  struct Job {
    size_t user;
    std::string rel;    // the tree, relative to the mail root
    bool file = false;  // a tree of one file (an mbox spool INBOX): its size, not a walk
  };
  std::vector<std::vector<Job>> jobs(config.servers.size());
  std::vector<std::optional<MailLocation>> locs(config.servers.size());
  for (size_t i = 0; i < config.servers.size(); ++i)
    if (!config.servers[i].mail_location.empty())
      if (auto loc = parse_mail_location(config.servers[i].mail_location); loc.ok()) locs[i] = std::move(*loc);
  for (size_t i : to_size) {
    const UserReport& u = inv.users[i];
    const size_t srv = static_cast<size_t>(u.server);
    if (!u.error.empty() || !locs[srv]) continue;
    auto trees = location_trees(*locs[srv], LocationUser{u.user, u.home_rel});
    if (!trees.ok()) {
      user_notes[i].push_back(trees.error().message());
      continue;
    }
    for (size_t k = 1; k < trees->size(); ++k) {
      auto rel = tree_in_root((*trees)[k].path, config.servers[srv].mail_root);
      if (!rel.ok()) user_notes[i].push_back(fmt::format("the {} tree: {}", (*trees)[k].name, rel.error().message()));
      else jobs[srv].push_back({i, std::move(*rel), (*trees)[k].file});
    }
  }
  auto add = [&](const Job& j, Result<MailboxSize> sz) {
    if (sz.ok()) inv.users[j.user].size_bytes += sz->bytes;
    else user_notes[j.user].push_back(fmt::format("'{}' (outside the home): {}", printable(j.rel), sz.error().message()));
  };
  // A spool file's size, by lstat there (its absence is 0 bytes: no mail yet).
  auto file_size = [&](size_t srv, const std::string& rel) -> Result<MailboxSize> {
    MailboxSize sz;
    if (agents[srv]) {
      auto st = MS_TRY(agents[srv]->stat({{rel, {}}}));
      if (st[0].error && st[0].error->code() != ErrorCode::kNotFound) return *st[0].error;
      sz.exists = !st[0].error;
      sz.bytes = st[0].error ? 0 : st[0].attrs.size;
    } else {
      struct stat st {};
      const std::string path = join_path(config.servers[srv].mail_root, rel);
      if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) return Error::from_errno(errno, "lstat " + printable(path));
        sz.exists = false;
      } else {
        sz.bytes = st.st_size;
      }
    }
    sz.files = sz.exists ? 1 : 0;
    return sz;
  };
  // One server's jobs run on one thread, so a user is only touched by one.
  parallel_for(config.servers.size(), threads, [&](size_t srv) {
    std::vector<Job> list;
    for (const auto& j : jobs[srv]) {
      if (!j.file) list.push_back(j);
      else if (!inv.servers[srv].failed) add(j, file_size(srv, j.rel));
    }
    if (list.empty() || inv.servers[srv].failed) return;
    if (!agents[srv]) {
      for (const auto& j : list) add(j, sizer.size(config.servers[srv], MailboxRef{inv.users[j.user].user, j.rel}));
      return;
    }
    for (size_t lo = 0; lo < list.size() && !interrupted(); lo += kSizeChunk) {
      const size_t hi = std::min(list.size(), lo + kSizeChunk);
      std::vector<std::string> homes;
      for (size_t k = lo; k < hi; ++k) homes.push_back(list[k].rel);
      Status st = agents[srv]->size_homes(homes, [&](size_t k, Result<MailboxSize> sz) -> Status {
        add(list[lo + k], std::move(sz));
        return {};
      });
      if (!st.ok()) {
        for (size_t k = lo; k < hi; ++k)
          user_notes[list[k].user].push_back(
              fmt::format("'{}' (outside the home) not sized: {}", printable(list[k].rel), st.error().message()));
        return;
      }
    }
  });
}

}  // namespace

Result<Inventory> take_inventory(const Config& config, Directory& directory, MetricsSource& metrics,
                                 MailboxSizer& sizer, Clock& clock, const InventoryOptions& options,
                                 const TransportOpener& open_agent) {
  Inventory inv;
  inv.taken_at_ms = clock.now_ms();
  const int64_t started = clock.monotonic_ms();
  const int threads = std::max(1, config.inventory.threads);
  inv.size_source = options.size_mailboxes ? std::string(size_source_name(config.inventory.size_source)) : "none";

  // 1. Disk and load of every server.
  inv.servers.resize(config.servers.size());
  {
    Progress progress("reading server metrics", static_cast<int64_t>(config.servers.size()));
    parallel_for(config.servers.size(), threads, [&](size_t i) {
      const ServerConfig& cfg = config.servers[i];
      ServerReport& s = inv.servers[i];
      s.name = cfg.name;
      s.server_class = cfg.server_class;
      s.draining = cfg.draining;
      auto m = metrics.fetch(cfg);
      if (m.ok()) {
        s.metrics = std::move(*m);
      } else {
        s.failed = true;
        s.error = m.error().message();
      }
      if (options.progress) progress.add();
    });
  }
  if (interrupted()) return Error::interrupted("inventory interrupted while reading server metrics");

  // 2. Mail roots, when sizes come from the disk. A scan of a server behind
  // the agent runs there: starting its agent is the check (it opens --root).
  std::vector<std::unique_ptr<Transport>> agents(config.servers.size());
  if (options.size_mailboxes && sizes_from_disk(config.inventory.size_source)) {
    for (size_t i = 0; i < config.servers.size(); ++i) {
      const ServerConfig& cfg = config.servers[i];
      ServerReport& s = inv.servers[i];
      if (s.failed) continue;
      if (cfg.transport != TransportKind::kLocal) {
        s.failed = true;
        if (config.inventory.size_source != SizeSource::kScan) {
          s.error = fmt::format("size_source = \"{}\" reads mail_root '{}' on this machine, but it is behind the agent; "
                                "set [inventory] size_source = \"scan\" (run by the agent) or \"doveadm\"",
                                size_source_name(config.inventory.size_source), printable(cfg.mail_root));
        } else if (!open_agent) {
          s.error = "no agent transport to size mailboxes over";
        } else if (auto t = open_agent(cfg); !t.ok()) {
          s.error = t.error().message();
        } else {
          agents[i] = std::move(*t);
          s.failed = false;
        }
        continue;
      }
      int fd = open(cfg.mail_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        s.failed = true;
        s.error = Error::from_errno(errno, fmt::format("mail_root '{}'", printable(cfg.mail_root))).message();
      } else {
        close(fd);
      }
    }
  }

  // 3. Accounts.
  std::map<std::string, int32_t, std::less<>> server_index;
  for (size_t i = 0; i < config.servers.size(); ++i) server_index.emplace(config.servers[i].name, static_cast<int32_t>(i));
  MS_CHECK_CTX(directory.for_each_account(
                   [&](Account&& a) -> Status {
                     if (interrupted()) return Error::interrupted("inventory interrupted while reading the directory");
                     auto it = server_index.find(a.host);
                     if (it == server_index.end())  // the directory validated it; be safe anyway
                       return Error::internal(fmt::format("account on unknown server '{}'", printable(a.host)));
                     UserReport u;
                     u.user = std::move(a.user);
                     u.dn = std::move(a.dn);
                     u.home_rel = std::move(a.home_rel);
                     u.server = it->second;
                     u.status = std::move(a.status);
                     u.activity = a.activity;
                     inv.users.push_back(std::move(u));
                     return {};
                   },
                   &inv.anomalies),
               "LDAP");
  {
    // A user name seen twice: keep the first entry (directory order), report the others.
    std::vector<uint32_t> order(inv.users.size());
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return inv.users[a].user < inv.users[b].user; });
    std::vector<uint8_t> drop(inv.users.size(), 0);
    size_t dropped = 0;
    for (size_t k = 1; k < order.size(); ++k) {
      const UserReport& prev = inv.users[order[k - 1]];
      UserReport& cur = inv.users[order[k]];
      if (cur.user != prev.user) continue;
      size_t first = k - 1;
      while (first > 0 && inv.users[order[first - 1]].user == cur.user) --first;
      inv.anomalies.push_back({printable(cur.dn), fmt::format("user '{}' is also at '{}'; this entry is skipped",
                                                             printable(cur.user, 80), printable(inv.users[order[first]].dn))});
      drop[order[k]] = 1;
      ++dropped;
    }
    if (dropped) {
      size_t w = 0;
      for (size_t r = 0; r < inv.users.size(); ++r)
        if (!drop[r]) {
          if (w != r) inv.users[w] = std::move(inv.users[r]);
          ++w;
        }
      inv.users.resize(w);
    }
  }

  // 4. Mailbox sizes.
  std::vector<size_t> to_size;
  for (size_t i = 0; i < inv.users.size(); ++i)
    if (!inv.servers[static_cast<size_t>(inv.users[i].server)].failed) to_size.push_back(i);
  std::vector<std::vector<std::string>> user_notes(inv.users.size());
  if (options.size_mailboxes) {
    // Work units: first each server sized by its agent (all its users, one
    // channel, kSizeChunk homes per request), then each other user alone.
    std::vector<std::vector<size_t>> by_agent(config.servers.size());
    std::vector<size_t> alone;
    for (size_t i : to_size) {
      const size_t srv = static_cast<size_t>(inv.users[i].server);
      if (agents[srv]) by_agent[srv].push_back(i);
      else alone.push_back(i);
    }
    std::vector<size_t> agent_servers;
    for (size_t srv = 0; srv < agents.size(); ++srv)
      if (agents[srv] && !by_agent[srv].empty()) agent_servers.push_back(srv);
    auto take = [&](size_t i, Result<MailboxSize> sz) {
      UserReport& u = inv.users[i];
      if (sz.ok()) {
        u.size_bytes = sz->bytes;
        u.messages = sz->messages;
        u.exists = sz->exists;
        user_notes[i] = std::move(sz->notes);
      } else {
        u.error = sz.error().message();
      }
    };
    Progress progress("sizing mailboxes", static_cast<int64_t>(to_size.size()));
    parallel_for(agent_servers.size() + alone.size(), threads, [&](size_t k) {
      if (k >= agent_servers.size()) {
        const size_t i = alone[k - agent_servers.size()];
        const UserReport& u = inv.users[i];
        take(i, sizer.size(config.servers[static_cast<size_t>(u.server)], MailboxRef{u.user, u.home_rel}));
        if (options.progress) progress.add();
        return;
      }
      const size_t srv = agent_servers[k];
      const std::vector<size_t>& users = by_agent[srv];
      for (size_t lo = 0; lo < users.size() && !interrupted(); lo += kSizeChunk) {
        const size_t hi = std::min(users.size(), lo + kSizeChunk);
        std::vector<std::string> homes;
        homes.reserve(hi - lo);
        for (size_t j = lo; j < hi; ++j) homes.push_back(inv.users[users[j]].home_rel);
        Status st = agents[srv]->size_homes(homes, [&](size_t j, Result<MailboxSize> sz) -> Status {
          if (interrupted()) return Error::interrupted("interrupted");
          take(users[lo + j], std::move(sz));
          if (options.progress) progress.add();
          return {};
        });
        if (!st.ok() && st.error().code() != ErrorCode::kInterrupted) {
          // The agent itself failed (died, broke the protocol): the server's
          // sizes are incomplete, so it is left out like a server whose
          // metrics failed.
          ServerReport& s = inv.servers[srv];
          s.failed = true;
          s.error = fmt::format("sizing mailboxes over the agent: {}", st.error().message());
          return;
        }
      }
    });
    if (interrupted()) return Error::interrupted("inventory interrupted while sizing mailboxes");
  }
  if (options.size_mailboxes && config.inventory.size_source == SizeSource::kScan) {
    size_outside_trees(config, inv, to_size, sizer, agents, threads, user_notes);
    // A scan counts Maildir message files (cur/, new/); sdbox, mdbox and
    // mbox keep messages inside files it does not parse: their count is
    // unknown, not 0.
    std::vector<char> counts;
    for (const auto& srv : config.servers) counts.push_back(maildir_counts(srv));
    for (size_t i : to_size)
      if (!counts[static_cast<size_t>(inv.users[i].server)]) inv.users[i].messages = -1;
  }
  for (size_t i = 0; i < inv.users.size(); ++i)
    for (auto& n : user_notes[i]) inv.notes.push_back(fmt::format("{}: {}", printable(inv.users[i].user, 120), n));

  // 5. Totals, classes, snapshot.
  for (auto& s : inv.servers) s.messages = inv.size_source == "none" ? -1 : 0;
  for (const auto& u : inv.users) {
    ServerReport& s = inv.servers[static_cast<size_t>(u.server)];
    ++s.users;
    s.mail_bytes += u.size_bytes;
    if (u.messages >= 0 && s.messages >= 0) s.messages += u.messages;
    else if (u.error.empty()) s.messages = -1;
    if (!u.error.empty()) ++s.user_errors;
  }
  Snapshot& snap = inv.snapshot;
  snap.taken_at_ms = inv.taken_at_ms;
  snap.source = "mailshard inventory";
  for (size_t i = 0; i < inv.servers.size(); ++i) {
    ServerReport& s = inv.servers[i];
    if (s.failed) continue;
    fill_capacity(s, config.servers[i]);
    if (s.capacity_bytes <= 0) {
      s.failed = true;
      s.error = "capacity is 0 (set capacity_bytes)";
      continue;
    }
    s.snapshot_id = static_cast<int32_t>(snap.servers.size());
    // Only behind a director is a storage group a place users move in without a copy.
    snap.servers.push_back({s.name, s.server_class, s.capacity_bytes, s.other_used_bytes, s.load_capacity, s.draining,
                            config.router.method == RouterMethod::kDirector ? config.servers[i].storage_group : ""});
  }
  std::map<std::string, std::vector<const ServerReport*>> by_class;
  for (const auto& s : inv.servers)
    if (!s.failed) by_class[s.server_class].push_back(&s);
  for (const auto& [name, list] : by_class) {
    ClassSummary c;
    c.name = name;
    c.servers = static_cast<int>(list.size());
    double used = 0, cap = 0;
    std::vector<double> utils;
    for (const auto* s : list) {
      used += static_cast<double>(s->used_bytes);
      if (!s->draining) {
        cap += static_cast<double>(s->capacity_bytes);
        utils.push_back(s->utilisation);
      }
    }
    c.mean_utilisation = cap > 0 ? used / cap : 0;
    double var = 0;
    for (double u : utils) var += (u - c.mean_utilisation) * (u - c.mean_utilisation);
    c.stddev_utilisation = utils.empty() ? 0 : std::sqrt(var / static_cast<double>(utils.size()));
    inv.classes.push_back(c);
    bool known = false;
    for (const char* k : kBenchmarkClasses) known |= name == k;
    if (!known)
      inv.notes.push_back(fmt::format("class '{}' is not one the benchmark tools know (std, ssd); mailshard's own "
                                      "planner reads it fine",
                                      printable(name, 40)));
  }
  int64_t skipped_users = 0;
  snap.reserve_users(inv.users.size());
  for (const auto& u : inv.users) {
    const ServerReport& s = inv.servers[static_cast<size_t>(u.server)];
    if (s.failed) {
      ++skipped_users;
      continue;
    }
    // A user being frozen is mid-move (or held by an operator): never planned.
    bool pinned = !u.error.empty() ||
                  (config.freeze.method == FreezeMethod::kLdapAttribute &&
                   read_freeze_value(config.freeze, u.status, 0).state != FreezeState::kNotFrozen);
    snap.add_user(s.snapshot_id, u.error.empty() ? u.size_bytes : 0, u.activity, pinned, u.user);
  }
  for (const auto& s : inv.servers)
    if (s.failed) snap.notes.push_back(fmt::format("server {} left out: {}", s.name, s.error));
  if (skipped_users) snap.notes.push_back(fmt::format("{} users on failed servers left out", skipped_users));
  if (!inv.anomalies.empty()) snap.notes.push_back(fmt::format("{} directory entries skipped as anomalies", inv.anomalies.size()));
  if (int64_t e = inv.user_errors()) snap.notes.push_back(fmt::format("{} users could not be sized (pinned, size 0)", e));
  inv.elapsed_ms = clock.monotonic_ms() - started;
  return inv;
}

Result<Inventory> take_inventory(const Config& config, Clock& clock, const InventoryOptions& options) {
  auto directory = MS_TRY(LdapDirectory::connect(config));
  ServerMetricsSource metrics(config.inventory.metrics_timeout_ms, config.inventory.metrics_retries, clock);
  auto sizer = make_mailbox_sizer(config.inventory.size_source, config.inventory.metrics_timeout_ms);
  // One channel per server: its homes go in kSizeChunk requests, one after another.
  auto open_agent = [](const ServerConfig& server) { return make_server_transport(server, 1); };
  return take_inventory(config, *directory, metrics, *sizer, clock, options, open_agent);
}

std::string snapshot_meta_json(const Inventory& inv, const Config& config) {
  nlohmann::ordered_json how;
  how["config"] = config.path;
  how["ldap_uri"] = config.ldap.uri;
  how["ldap_base_dn"] = config.ldap.base_dn;
  how["ldap_filter"] = config.ldap.filter;
  how["size_source"] = inv.size_source;
  how["elapsed_ms"] = inv.elapsed_ms;
  auto servers = nlohmann::ordered_json::array();
  for (const auto& s : inv.servers) {
    nlohmann::ordered_json j;
    j["name"] = s.name;
    j["failed"] = s.failed;
    if (s.failed) j["error"] = s.error;
    j["metrics_source"] = s.metrics.source;
    j["capacity_overridden"] = s.capacity_overridden;
    servers.push_back(std::move(j));
  }
  how["servers"] = std::move(servers);
  how["anomalies"] = inv.anomalies.size();
  how["user_errors"] = inv.user_errors();
  nlohmann::ordered_json meta;
  meta["taken_at"] = format_time_ms(inv.taken_at_ms);
  meta["how"] = std::move(how);
  meta["notes"] = inv.snapshot.notes;
  return meta.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace mailshard
