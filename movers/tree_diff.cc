#include "movers/tree_diff.h"

#include <xxhash.h>

#include <algorithm>
#include <string_view>
#include <unordered_set>

namespace mailshard {
namespace {

std::string_view parent_of(std::string_view p) {
  auto s = p.rfind('/');
  return s == std::string_view::npos ? std::string_view() : p.substr(0, s);
}

std::string_view last_of(std::string_view p) {
  auto s = p.rfind('/');
  return s == std::string_view::npos ? p : p.substr(s + 1);
}

size_t depth(std::string_view p) { return p.empty() ? 0 : 1 + static_cast<size_t>(std::count(p.begin(), p.end(), '/')); }

bool under(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;
  return path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/';
}

// A message of a folder on the source, found by its base name.
struct Src {
  std::string_view base;
  const std::string* dir;
  const std::string* name;
  bool matched = false;
};

// Base name -> Src, open addressing over one flat array: a 45k-message cur/
// is matched without an allocation per message.
class BaseIndex {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, kEmpty);
    items_.reserve(n);
  }
  // False if the base is already there.
  bool insert(std::string_view base, const std::string* dir, const std::string* name) {
    if (items_.size() * 2 >= slots_.size()) grow();
    size_t i = probe(base);
    if (slots_[i] != kEmpty) return false;
    slots_[i] = static_cast<uint32_t>(items_.size());
    items_.push_back(Src{base, dir, name});
    return true;
  }
  Src* find(std::string_view base) {
    if (slots_.empty()) return nullptr;
    size_t i = probe(base);
    return slots_[i] == kEmpty ? nullptr : &items_[slots_[i]];
  }
  std::vector<Src>& items() { return items_; }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  size_t probe(std::string_view base) const {
    size_t mask = slots_.size() - 1;
    size_t i = XXH3_64bits(base.data(), base.size()) & mask;
    while (slots_[i] != kEmpty && items_[slots_[i]].base != base) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<Src> keep = std::move(items_);
    reserve(std::max<size_t>(keep.size() * 2, 16));
    for (const auto& s : keep) insert(s.base, s.dir, s.name);
  }
  std::vector<uint32_t> slots_;
  std::vector<Src> items_;
};

}  // namespace

ListingIndex index_listing(const TreeListing& listing) {
  ListingIndex idx;
  idx.info.resize(listing.size());
  idx.skipped.resize(listing.size(), false);
  std::unordered_map<std::string_view, size_t> by_path;
  by_path.reserve(listing.size());
  for (size_t i = 0; i < listing.size(); ++i) by_path.emplace(listing[i].path, i);
  auto has_cur_new = [&](size_t i) {
    bool cur = false, neu = false;
    for (const auto& e : listing[i].entries) {
      if (e.type != EntryType::kDir) continue;
      if (e.name == "cur") cur = true;
      if (e.name == "new") neu = true;
    }
    return cur && neu;
  };
  std::unordered_map<size_t, bool> maildir_cache;
  for (size_t i = 0; i < listing.size(); ++i) {
    const std::string& path = listing[i].path;
    if (path.empty()) continue;
    auto pit = by_path.find(parent_of(path));
    if (pit == by_path.end()) continue;
    size_t parent = pit->second;
    auto mc = maildir_cache.find(parent);
    bool folder = mc != maildir_cache.end() ? mc->second : (maildir_cache[parent] = has_cur_new(parent));
    idx.info[i] = classify_dir(last_of(path), folder);
    // Parents come before children: everything below a Maildir tmp/ is
    // skipped (tmp/ itself is created, empty).
    idx.skipped[i] = idx.skipped[parent] || idx.info[parent].maildir_tmp;
  }
  return idx;
}

TreePlan diff_tree(const TreeListing& src, const SyncState& state, const DstExtras* extras, bool with_kept) {
  TreePlan plan;
  ListingIndex idx = index_listing(src);
  std::unordered_set<std::string_view> src_dirs;
  src_dirs.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i)
    if (!idx.skipped[i]) src_dirs.insert(src[i].path);

  auto on_dst = [&](const std::string& path, EntryType t) {
    if (!extras) return false;
    auto it = extras->find(path);
    return it != extras->end() && it->second == t;
  };
  std::unordered_set<std::string> claimed_extras;

  // Removes a state directory tree (type change or gone from the source).
  auto delete_state_tree = [&](const std::string& dir, std::vector<std::pair<std::string, EntryType>>& out) {
    std::vector<std::string> dirs;
    for (auto it = state.dirs.lower_bound(dir); it != state.dirs.end(); ++it) {
      if (it->first != dir && !under(it->first, dir)) {
        if (it->first > dir && it->first.compare(0, dir.size(), dir) != 0) break;
        continue;
      }
      for (const auto& [name, e] : it->second.entries) out.emplace_back(join_path(it->first, name), e.type);
      dirs.push_back(it->first);
    }
    std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
      return depth(a) != depth(b) ? depth(a) > depth(b) : a > b;
    });
    for (auto& d : dirs) out.emplace_back(std::move(d), EntryType::kDir);
  };

  for (size_t i = 0; i < src.size(); ++i) {
    const DirListing& dl = src[i];
    if (idx.skipped[i]) continue;
    plan.dirs.push_back({dl.path, dl.attrs});
    auto sit = state.dirs.find(dl.path);
    const DirState* sd = sit == state.dirs.end() ? nullptr : &sit->second;
    if (!sd) plan.mkdirs.push_back({dl.path, dl.attrs});
    const DirInfo& info = idx.info[i];
    if (info.maildir_tmp) {
      plan.skipped += dl.entries.size();
      continue;
    }
    if (info.maildir_sub) continue;  // messages: matched per folder below
    std::unordered_set<std::string_view> seen;
    for (const auto& e : dl.entries) {
      ++plan.entries;
      std::string path = join_path(dl.path, e.name);
      if (e.type == EntryType::kOther || e.type == EntryType::kUnknown) {
        ++plan.skipped;  // FIFOs, sockets, devices: never part of a mailbox copy
        continue;
      }
      if (e.type == EntryType::kFile && is_skipped_name(e.name)) {
        ++plan.skipped;
        continue;
      }
      seen.insert(e.name);
      const EntryState* se = nullptr;
      if (sd) {
        auto it = sd->entries.find(e.name);
        if (it != sd->entries.end()) se = &it->second;
      }
      bool state_dir = state.dirs.count(path) > 0;
      if (e.type == EntryType::kDir) {
        if (se) plan.early_deletes.emplace_back(path, se->type);  // was a file or symlink
        continue;  // the directory itself comes as its own listing entry
      }
      if (state_dir) delete_state_tree(path, plan.early_deletes);  // was a directory
      if (se && se->type != e.type) {
        plan.early_deletes.emplace_back(path, se->type);
        se = nullptr;
      }
      FileClass cls = e.type == EntryType::kFile ? classify_file(info, e.name) : FileClass::kRewritten;
      if (!se) {
        bool has = on_dst(path, e.type);
        if (has) claimed_extras.insert(path);
        plan.new_entries.push_back({path, e.type, cls, has});
      } else if (e.type == EntryType::kSymlink) {
        plan.symlinks.push_back(path);
      } else if (cls == FileClass::kImmutable) {
        if (with_kept) plan.kept_files.push_back(path);
      } else {
        plan.mutable_files.push_back({path, e.type, cls, true});
      }
    }
    if (sd) {
      for (const auto& [name, se] : sd->entries)
        if (!seen.count(name)) plan.deletes.emplace_back(join_path(dl.path, name), se.type);
    }
  }

  // Maildir folders: match cur/ + new/ by base name.
  for (size_t i = 0; i < src.size(); ++i) {
    if (idx.skipped[i] || !idx.info[i].maildir_sub) continue;
    const DirListing& dl = src[i];
    // Handle each folder once, from its cur/ (or new/ if it has no cur/ in the listing).
    std::string folder(parent_of(dl.path));
    if (last_of(dl.path) == "new" && src_dirs.count(join_path(folder, "cur"))) continue;
    BaseIndex by_base;
    std::vector<const DirListing*> subs;
    size_t total = 0;
    for (const char* sub : {"cur", "new"}) {
      std::string p = join_path(folder, sub);
      for (size_t j = 0; j < src.size(); ++j)
        if (src[j].path == p && !idx.skipped[j]) subs.push_back(&src[j]);
      if (subs.size() == 2) break;
    }
    for (const DirListing* s : subs) total += s->entries.size();
    by_base.reserve(total);
    // Source names whose base another name of the folder already has. Dovecot
    // tolerates such duplicates; each keeps its own content, matched by its
    // full name only, and its base is never used to pair names (a rename could
    // give one name the other's content).
    std::vector<Src> dups;
    std::unordered_set<std::string_view> ambiguous;
    for (const DirListing* s : subs) {
      for (const auto& e : s->entries) {
        ++plan.entries;
        if (e.type != EntryType::kFile || is_skipped_name(e.name)) {
          if (e.type == EntryType::kFile) {
            ++plan.skipped;
            continue;
          }
          // Directories/symlinks inside cur/ or new/ are not messages: by name.
          std::string path = join_path(s->path, e.name);
          auto sit = state.dirs.find(s->path);
          const EntryState* se = nullptr;
          if (sit != state.dirs.end()) {
            auto it = sit->second.entries.find(e.name);
            if (it != sit->second.entries.end()) se = &it->second;
          }
          if (e.type == EntryType::kSymlink) {
            if (se && se->type == EntryType::kSymlink) plan.symlinks.push_back(path);
            else {
              if (se) plan.early_deletes.emplace_back(path, se->type);
              plan.new_entries.push_back({path, e.type, FileClass::kRewritten, on_dst(path, e.type)});
            }
          } else if (e.type == EntryType::kDir && se) {
            plan.early_deletes.emplace_back(path, se->type);  // a message became a directory
          }
          continue;
        }
        std::string_view base = message_base(e.name);
        if (!by_base.insert(base, &s->path, &e.name)) {
          dups.push_back(Src{base, &s->path, &e.name});
          ambiguous.insert(base);
        }
      }
    }
    // The state's messages of this folder. First every name that is still
    // there under the same name (the common case, no path built), then the
    // rest by base name: renames (flag changes, new/ -> cur/) and expunges.
    struct Rest {
      const std::string* dir;
      const std::string* name;
      const EntryState* se;
    };
    std::vector<Rest> rest;
    for (const char* sub : {"cur", "new"}) {
      std::string p = join_path(folder, sub);
      auto sit = state.dirs.find(p);
      if (sit == state.dirs.end()) continue;
      for (const auto& [name, se] : sit->second.entries) {
        if (se.type == EntryType::kFile) {
          Src* it = by_base.find(message_base(name));
          if (it && !it->matched && *it->dir == p && *it->name == name) {
            it->matched = true;
            if (with_kept) plan.kept_files.push_back(join_path(p, name));
            continue;
          }
          bool dup_match = false;
          for (auto& d : dups)
            if (!d.matched && *d.dir == p && *d.name == name) {
              d.matched = dup_match = true;
              if (with_kept) plan.kept_files.push_back(join_path(p, name));
              break;
            }
          if (dup_match) continue;
        }
        rest.push_back({&sit->first, &name, &se});
      }
    }
    // Two state names left with one base: which one became the source's name
    // cannot be told, so neither is renamed.
    {
      std::unordered_map<std::string_view, int> bases;
      for (const auto& r : rest)
        if (r.se->type == EntryType::kFile && ++bases[message_base(*r.name)] == 2) ambiguous.insert(message_base(*r.name));
    }
    for (const auto& r : rest) {
      std::string old_path = join_path(*r.dir, *r.name);
      if (r.se->type != EntryType::kFile) {
        // Non-message entries of cur/new were handled by name above; delete if gone.
        bool present = false;
        for (const DirListing* s : subs)
          if (s->path == *r.dir)
            for (const auto& e : s->entries)
              if (e.name == *r.name && e.type == r.se->type) present = true;
        if (!present) plan.deletes.emplace_back(std::move(old_path), r.se->type);
        continue;
      }
      std::string_view base = message_base(*r.name);
      Src* it = ambiguous.count(base) ? nullptr : by_base.find(base);
      if (!it || it->matched) {
        plan.deletes.emplace_back(std::move(old_path), EntryType::kFile);  // expunged (or ambiguous: copied anew)
        continue;
      }
      it->matched = true;
      std::string new_path = join_path(*it->dir, *it->name);
      if (new_path != old_path) plan.renames.emplace_back(std::move(old_path), std::move(new_path));
      else if (with_kept) plan.kept_files.push_back(std::move(new_path));
    }
    for (auto* items : {&by_base.items(), &dups}) {
      for (auto& s : *items) {
        if (s.matched) continue;
        std::string path = join_path(*s.dir, *s.name);
        bool has = on_dst(path, EntryType::kFile);
        if (has) claimed_extras.insert(path);
        plan.new_entries.push_back({std::move(path), EntryType::kFile, FileClass::kMessage, has});
      }
    }
  }

  // State directories the source no longer has (folders deleted), deepest last.
  {
    std::vector<std::pair<std::string, EntryType>> gone;
    std::vector<std::string> gone_dirs;
    for (const auto& [path, d] : state.dirs) {
      if (src_dirs.count(path)) continue;
      bool parent_gone = false;
      for (const auto& g : gone_dirs)
        if (under(path, g)) parent_gone = true;
      if (parent_gone) continue;
      gone_dirs.push_back(path);
    }
    for (const auto& g : gone_dirs) {
      // A directory replaced by a file/symlink was already scheduled early.
      bool early = false;
      for (const auto& [p, t] : plan.early_deletes)
        if (p == g && t == EntryType::kDir) early = true;
      if (!early) delete_state_tree(g, gone);
    }
    // Files first, then directories deepest first.
    std::stable_partition(gone.begin(), gone.end(), [](const auto& e) { return e.second != EntryType::kDir; });
    plan.deletes.insert(plan.deletes.end(), gone.begin(), gone.end());
  }

  // Destination extras nobody claimed: not on the source, so they go.
  if (extras) {
    std::vector<std::pair<std::string, EntryType>> files, dirs;
    for (const auto& [path, type] : *extras) {
      if (claimed_extras.count(path)) continue;
      if (type == EntryType::kDir) {
        if (!src_dirs.count(path)) dirs.emplace_back(path, type);
      } else {
        files.emplace_back(path, type);
      }
    }
    std::sort(files.begin(), files.end());
    std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) {
      return depth(a.first) != depth(b.first) ? depth(a.first) > depth(b.first) : a.first > b.first;
    });
    // Extras that clash with a new entry's type are removed before it is created.
    for (auto& f : files) {
      bool clash = false;
      for (const auto& ne : plan.new_entries)
        if (ne.path == f.first) clash = true;
      (clash ? plan.early_deletes : plan.deletes).push_back(std::move(f));
    }
    for (auto& d : dirs) plan.deletes.push_back(std::move(d));
  }

  // Whatever the pass creates must find nothing of another type in its place
  // on the destination (a file that became a directory or the other way
  // round, a stray file or symlink where a folder goes): that goes first, in
  // the early deletes, and only there.
  {
    auto state_type = [&](const std::string& path) {
      if (state.dirs.count(path)) return EntryType::kDir;
      auto d = state.dirs.find(std::string(parent_of(path)));
      if (d != state.dirs.end()) {
        auto it = d->second.entries.find(std::string(last_of(path)));
        if (it != d->second.entries.end()) return it->second.type;
      }
      return EntryType::kUnknown;
    };
    auto extra_type = [&](const std::string& path) {
      if (!extras) return EntryType::kUnknown;
      auto it = extras->find(path);
      return it == extras->end() ? EntryType::kUnknown : it->second;
    };
    auto not_dir = [](EntryType t) { return t == EntryType::kFile || t == EntryType::kSymlink; };
    std::vector<std::pair<std::string, EntryType>>& early = plan.early_deletes;
    for (const auto& m : plan.mkdirs) {
      if (EntryType t = state_type(m.path); not_dir(t)) early.emplace_back(m.path, t);
      if (EntryType t = extra_type(m.path); not_dir(t)) early.emplace_back(m.path, t);
    }
    for (const auto& n : plan.new_entries) {
      if (state_type(n.path) == EntryType::kDir) delete_state_tree(n.path, early);
      if (extra_type(n.path) == EntryType::kDir)
        for (const auto& [q, t] : *extras)
          if (q == n.path || under(q, n.path)) early.emplace_back(q, t);
    }
    // Once each; files and symlinks first, then directories deepest first.
    std::unordered_set<std::string> once;
    std::vector<std::pair<std::string, EntryType>> files, dirs;
    for (auto& e : early)
      if (once.insert(e.first).second) (e.second == EntryType::kDir ? dirs : files).push_back(std::move(e));
    std::stable_sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return depth(a.first) > depth(b.first); });
    early = std::move(files);
    early.insert(early.end(), std::make_move_iterator(dirs.begin()), std::make_move_iterator(dirs.end()));
    std::erase_if(plan.deletes, [&](const auto& d) { return once.count(d.first) > 0; });
  }
  return plan;
}

}  // namespace mailshard
