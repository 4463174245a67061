// The metadata set of a pass (uidlists, keywords, indexes, logs, caches,
// subscriptions, sieve, quota, Courier files): each file re-checked by size,
// mtime, ctime and hash, sent as a tail, block diff, librsync delta or whole
// (movers/transfer_policy.h decides), and published together with the others
// of its stream. A batch runs on a thread of its own beside the pass's
// listing and message work, so it reads a copy of the state entries it needs
// (Known) and reports through a MetaOutcome that merge_metadata() applies.
#include <algorithm>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/stream_pool.h"
#include "movers/sync_pass.h"

namespace mailshard {
namespace {

using Method = TransferMethod;

const EntryState* known_entry(const std::unordered_map<std::string, EntryState>& known, const std::string& rel) {
  auto it = known.find(rel);
  return it == known.end() ? nullptr : &it->second;
}

std::string_view dir_of(std::string_view rel) {
  const auto slash = rel.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : rel.substr(0, slash);
}

// The batch's items whose copy on the destination this pass replaces or
// removes: the state knows their content (a whole hash) and the source no
// longer has it (gone, another size, or another hash). By directory, then
// size. Dovecot keeps the dovecot.index it replaces as dovecot.index.backup
// (a rename): the backup's new content is the replaced sibling's old one,
// which the destination already holds (plan_metadata links it instead of
// sending it). Only names of one batch pair up: a name new to the state
// (dovecot.index.log.2 after a log rotation) comes in a later batch, after
// its sibling's copy was replaced, and is sent.
template <class Item>  // PassRunner::MetaItem
std::map<std::pair<std::string_view, int64_t>, std::vector<size_t>> replaced_siblings(
    const std::vector<Item>& items, const std::unordered_map<std::string, EntryState>& known,
    const std::vector<StatResult>& res) {
  std::map<std::pair<std::string_view, int64_t>, std::vector<size_t>> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const EntryState* se = items[i].in_state ? known_entry(known, items[i].rel) : nullptr;
    if (!se || !se->has_hash || se->type != EntryType::kFile) continue;
    const StatResult& r = res[i];
    bool replaced = false;
    if (r.error) replaced = r.error->code() == ErrorCode::kNotFound;
    else if (r.attrs.type != EntryType::kFile) replaced = false;  // a type change: left to merge_metadata
    else if (r.attrs.size != se->attrs.size) replaced = true;
    else replaced = r.hash && !(*r.hash == se->hash);
    if (replaced) out[{dir_of(items[i].rel), se->attrs.size}].push_back(i);
  }
  return out;
}

// Indexes 0..sizes.size()-1 in `groups` parts of about equal total size,
// largest first, each to the lightest part so far.
std::vector<std::vector<size_t>> balance_by_size(const std::vector<int64_t>& sizes, size_t groups) {
  std::vector<std::vector<size_t>> part(groups);
  std::vector<size_t> order(sizes.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<int64_t> load(groups, 0);
  for (size_t k : order) {
    size_t g = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    part[g].push_back(k);
    load[g] += sizes[k];
  }
  return part;
}

}  // namespace

Status PassRunner::metadata_batch(std::vector<MetaItem>& items, const Known& known, MetaOutcome& out) {
  if (items.empty()) return {};
  auto meta_t0 = Steady::now();
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.rel < b.rel; });
  out.stats.metadata_checked += static_cast<int64_t>(items.size());
  std::vector<StatResult> res = MS_TRY(stat_metadata(items, known, out));
  if (e_.options_.leave_out) {  // (a dbox sweep's side copy: storage files the move copied unchanged)
    size_t kept = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      const StatResult& r = res[i];
      if (!r.error && r.attrs.type == EntryType::kFile && e_.options_.leave_out(items[i].rel, r.attrs)) continue;
      if (kept != i) {
        items[kept] = std::move(items[i]);
        res[kept] = std::move(res[i]);
      }
      ++kept;
    }
    items.resize(kept);
    res.resize(kept);
  }
  std::unordered_map<size_t, StatResult> dres = MS_TRY(stat_unknown_copies(items));
  std::vector<std::pair<std::string, EntryType>> vanished;
  std::vector<MetaTransfer> transfers = MS_TRY(plan_metadata(items, known, res, dres, vanished, out));
  spdlog::debug("metadata: stat+hash done at {:.3f}s", secs(Steady::now() - meta_t0));
  // A transfer whose basis was not what the state said, or whose source
  // changed while read, goes again, whole, in the next round.
  for (int round = 0; !transfers.empty(); ++round) {
    std::vector<MetaSent> sent = MS_TRY(send_metadata(items, transfers, res, vanished, out));
    spdlog::debug("metadata: committed at {:.3f}s", secs(Steady::now() - meta_t0));
    transfers = MS_TRY(record_metadata(items, transfers, sent, round, out));
  }
  // Metadata gone from the source meanwhile: its stale copy goes too.
  for (auto& v : vanished) out.vanished.push_back(std::move(v));
  return {};
}

// Step 1: lstat only. Step 2 hashes what stat cannot decide: a file whose
// size, mtime and ctime match the state is hashed to confirm it (in-place
// writers can keep all three); a grown file gets the hash of its old length
// (is it an append?). Everything else changed for sure and is read once, by
// the transfer, which hashes it anyway.
Result<std::vector<StatResult>> PassRunner::stat_metadata(const std::vector<MetaItem>& items, const Known& known,
                                                          MetaOutcome& out) {
  std::vector<StatRequest> rq;
  rq.reserve(items.size());
  for (const auto& it : items) rq.push_back({S(it.rel), {}});
  auto res = MS_TRY(stat_source(rq).context("stat source " + e_.src_.describe()));
  out.stats.stat_calls += static_cast<int64_t>(rq.size());
  std::vector<StatRequest> hq;
  std::vector<size_t> hi;
  for (size_t i = 0; i < items.size(); ++i) {
    const StatResult& r = res[i];
    const EntryState* se = items[i].in_state ? known_entry(known, items[i].rel) : nullptr;
    if (r.error || r.attrs.type != EntryType::kFile) continue;
    StatRequest h{S(items[i].rel), {}};
    if (!se || !se->has_hash) {
      h.hash.whole = items[i].on_dst;  // may be adopted if equal to the destination's copy
    } else if (se->attrs.size == r.attrs.size && se->attrs.mtime_ns == r.attrs.mtime_ns &&
               se->attrs.ctime_ns == r.attrs.ctime_ns) {
      h.hash.whole = true;
    } else if (r.attrs.size > se->attrs.size) {
      h.hash.prefix_len = se->attrs.size;  // appended? (logs, uidlists, mbox deliveries)
    } else if (r.attrs.size == se->attrs.size) {
      h.hash.whole = true;  // maybe only touched: then only the attributes change
    }
    if (!h.hash.whole && h.hash.prefix_len < 0) continue;
    hq.push_back(std::move(h));
    hi.push_back(i);
  }
  if (!hq.empty()) {
    auto hres = MS_TRY(stat_source(hq).context("hash source " + e_.src_.describe()));
    for (size_t k = 0; k < hres.size(); ++k) res[hi[k]] = std::move(hres[k]);
  }
  // A changed file as big as a sibling this pass replaces may be that
  // sibling's old content (replaced_siblings): its whole hash tells.
  const auto replaced = replaced_siblings(items, known, res);
  if (!replaced.empty()) {
    std::vector<StatRequest> tq;
    std::vector<size_t> ti;
    for (size_t i = 0; i < items.size(); ++i) {
      const StatResult& r = res[i];
      if (r.error || r.attrs.type != EntryType::kFile || r.hash) continue;
      if (!replaced.count({dir_of(items[i].rel), r.attrs.size})) continue;
      tq.push_back({S(items[i].rel), {true, -1}});
      ti.push_back(i);
    }
    if (!tq.empty()) {
      auto tres = MS_TRY(stat_source(tq).context("hash source " + e_.src_.describe()));
      for (size_t k = 0; k < tres.size(); ++k) res[ti[k]] = std::move(tres[k]);
    }
  }
  return res;
}

// The destination's copies the state does not know: hashed to adopt them or
// to use them as a delta basis. By item index.
Result<std::unordered_map<size_t, StatResult>> PassRunner::stat_unknown_copies(const std::vector<MetaItem>& items) {
  std::unordered_map<size_t, StatResult> dres;
  std::vector<StatRequest> dq;
  std::vector<size_t> di;
  for (size_t i = 0; i < items.size(); ++i)
    if (!items[i].in_state && items[i].on_dst) {
      dq.push_back({D(items[i].rel), {true, -1}});
      di.push_back(i);
    }
  if (!dq.empty()) {
    auto d = MS_TRY(e_.dst_.stat(dq).context("stat destination " + e_.dst_.describe()));
    for (size_t k = 0; k < d.size(); ++k) dres.emplace(di[k], std::move(d[k]));
  }
  return dres;
}

// What each item needs: nothing (gone: `vanished`; no longer a regular file:
// out.type_changed), its attributes only (unchanged content, set here), or a
// transfer (returned, with its method and, for a delta, the signature's block
// length).
Result<std::vector<PassRunner::MetaTransfer>> PassRunner::plan_metadata(
    const std::vector<MetaItem>& items, const Known& known, std::vector<StatResult>& res,
    const std::unordered_map<size_t, StatResult>& dres, std::vector<std::pair<std::string, EntryType>>& vanished,
    MetaOutcome& out) {
  std::vector<MetaTransfer> transfers;
  std::vector<TreeOp> attr_ops;
  // Files whose new content is a replaced sibling's old one: item -> sibling.
  // A sibling that is itself a link's target is not used (a swap of two
  // names would link each to the other's new copy), and a sibling is the
  // source of one link at most: two names linked to one copy would share an
  // inode on the destination, each with the other's attributes (Courier's
  // keyword files often hold the same keywords).
  std::unordered_map<size_t, size_t> twin_of;
  std::unordered_set<size_t> twin_taken;
  if (const auto replaced = replaced_siblings(items, known, res); !replaced.empty()) {
    for (size_t i = 0; i < items.size(); ++i) {
      const StatResult& r = res[i];
      if (r.error || r.attrs.type != EntryType::kFile || !r.hash) continue;
      if (!items[i].in_state && items[i].on_dst) continue;  // a copy the state does not know: adopted or a basis
      const EntryState* se = items[i].in_state ? known_entry(known, items[i].rel) : nullptr;
      if (se && se->has_hash && se->hash == *r.hash && se->attrs.size == r.attrs.size) continue;  // its own content
      auto c = replaced.find({dir_of(items[i].rel), r.attrs.size});
      if (c == replaced.end()) continue;
      for (size_t k : c->second)
        if (k != i && !twin_taken.count(k) && known_entry(known, items[k].rel)->hash == *r.hash) {
          twin_of.emplace(i, k);
          twin_taken.insert(k);
          break;
        }
    }
    for (auto it = twin_of.begin(); it != twin_of.end();) {
      if (twin_of.count(it->second)) it = twin_of.erase(it);
      else ++it;
    }
  }
  std::vector<size_t> linked;  // items in link_ops' order
  std::vector<TreeOp> link_ops;
  std::unordered_map<size_t, MetaTransfer> fallback;  // a linked item's transfer, if its link fails
  for (size_t i = 0; i < items.size(); ++i) {
    const MetaItem& it = items[i];
    StatResult& r = res[i];
    const auto tw = twin_of.find(i);
    if (tw != twin_of.end()) {
      TreeOp link;
      link.kind = TreeOp::Kind::kLink;
      link.from = D(items[tw->second].rel);
      link.path = D(it.rel);
      link_ops.push_back(std::move(link));
      out.linked_from.push_back(items[tw->second].rel);
      linked.push_back(i);
      // (its transfer, planned below, is kept for a link that fails)
    }
    if (r.error) {
      if (r.error->code() == ErrorCode::kNotFound) {
        ++out.stats.vanished;
        if (it.in_state) vanished.emplace_back(it.rel, EntryType::kFile);
        continue;
      }
      return Error(*r.error).context("stat source");
    }
    if (r.attrs.type != EntryType::kFile) {
      out.type_changed.push_back(it.rel);  // merge_metadata() decides: a change the listing saw, or a race
      continue;
    }
    const EntryState* se = it.in_state ? known_entry(known, it.rel) : nullptr;
    const StatResult* dr = nullptr;
    if (auto d = dres.find(i); d != dres.end() && !d->second.error && d->second.attrs.type == EntryType::kFile)
      dr = &d->second;
    // Unchanged content: at most the attributes.
    bool same_content = (se && se->has_hash && r.hash && se->hash == *r.hash && se->attrs.size == r.attrs.size) ||
                        (!se && dr && dr->hash && r.hash && *dr->hash == *r.hash);
    if (same_content) {
      const FileAttrs& have = se ? se->attrs : dr->attrs;
      EntryState es = se ? *se : EntryState{};
      es.type = EntryType::kFile;
      es.has_hash = true;
      es.hash = *r.hash;
      es.attrs = r.attrs;
      if (!se) ++out.stats.adopted;
      if (!same_kept_attrs(have, r.attrs)) {
        TreeOp op;
        op.kind = TreeOp::Kind::kSetAttrs;
        op.path = D(it.rel);
        op.attrs = r.attrs;
        op.attr_mask = TreeOp::kAllAttrs;
        attr_ops.push_back(std::move(op));
        out.changed.push_back(it.rel);
      }
      out.puts.emplace_back(it.rel, std::move(es));
      continue;
    }
    MetaTransfer t{i, Method::kWhole, ReadSpec(S(it.rel)), WriteSpec::Kind::kNew};
    std::string_view name = std::string_view(it.rel).substr(it.rel.rfind('/') + 1);
    // An mdbox storage file only grows (Dovecot appends mail to it; purge
    // writes new files). Between warm passes a save in progress may still
    // rewrite the header of the message it appends, or truncate a save it
    // rolls back, so there the file is simply sent again; under the freeze
    // nothing writes it, and a prefix that changed since the last pass means
    // something other than Dovecot's save wrote mail that is already copied.
    if (frozen_ && se && se->has_hash && is_mdbox_storage_file(name) &&
        !(r.attrs.size > se->attrs.size && r.prefix_hash && *r.prefix_hash == se->hash))
      return Error::corrupt(fmt::format("mdbox storage file '{}' changed before its end since the last pass ({} bytes "
                                        "then, {} now): m.* files are append-only; not copying it",
                                        printable(it.rel), se->attrs.size, r.attrs.size));
    TransferFacts facts;
    facts.cls = it.cls;
    facts.name = name;
    facts.frozen = frozen_;
    facts.size = r.attrs.size;
    facts.basis_size = se ? se->attrs.size : (dr ? dr->attrs.size : -1);
    facts.appended = se && se->has_hash && r.prefix_hash && *r.prefix_hash == se->hash && r.attrs.size > se->attrs.size;
    if (se) {
      facts.state_block_size = se->block_size;
      facts.state_blocks = se->blocks.size();
    }
    t.method = choose_transfer(facts);
    switch (t.method) {
      case Method::kTail:  // appended: the prefix is what we sent last time
        t.spec.offset = se->attrs.size;
        t.kind = WriteSpec::Kind::kPatch;
        break;
      case Method::kBlocks:  // only the source is read; the state holds the destination's block hashes
        t.spec.mode = ReadSpec::Mode::kBlockDiff;
        t.spec.old_blocks = se->blocks;
        t.kind = WriteSpec::Kind::kPatch;
        break;
      case Method::kDelta:
        t.spec.mode = ReadSpec::Mode::kDelta;
        t.kind = WriteSpec::Kind::kDelta;
        break;
      case Method::kWhole: break;
    }
    // Block hashes of what the destination will hold, for the next pass's
    // block diff (a block diff must use the state's block size).
    if (uint32_t bs = block_hashes_for(it.cls, name, r.attrs.size)) {
      t.spec.want_blocks = true;
      t.spec.block_size = se && se->block_size ? se->block_size : bs;
      t.spec.block_seed = st_.block_seed;
    }
    if (tw != twin_of.end()) fallback.emplace(i, std::move(t));
    else transfers.push_back(std::move(t));
  }
  // The links first: before any transfer replaces (or the pass removes) the
  // sibling's copy. Writes never change a published file in place (they
  // publish a new inode by rename), so the sibling's new copy leaves the
  // linked one as it is. A link that fails becomes a whole transfer.
  if (!link_ops.empty()) {
    std::vector<TreeOp> link_attrs;
    MS_CHECK(apply(link_ops, [&](size_t k, const Status& s) -> Status {
      const size_t i = linked[k];
      const StatResult& r = res[i];
      if (!s.ok()) {
        spdlog::debug("metadata: link '{}' to its replaced sibling: {}; sent instead", printable(items[i].rel),
                      s.error().message());
        transfers.push_back(std::move(fallback.at(i)));
        return {};
      }
      ++out.stats.hard_links;
      EntryState es;
      es.type = EntryType::kFile;
      es.has_hash = true;
      es.hash = *r.hash;
      es.attrs = r.attrs;
      const EntryState* twin = known_entry(known, items[twin_of.at(i)].rel);
      if (!same_kept_attrs(twin->attrs, r.attrs)) {
        TreeOp op;
        op.kind = TreeOp::Kind::kSetAttrs;
        op.path = D(items[i].rel);
        op.attrs = r.attrs;
        op.attr_mask = TreeOp::kAllAttrs;
        link_attrs.push_back(std::move(op));
      }
      out.puts.emplace_back(items[i].rel, std::move(es));
      out.written.emplace_back(items[i].rel, *r.hash);  // the frozen-copy check re-hashes it
      return {};
    }));
    attr_ops.insert(attr_ops.begin(), std::make_move_iterator(link_attrs.begin()),
                    std::make_move_iterator(link_attrs.end()));
  }
  if (!attr_ops.empty())
    MS_CHECK(apply(attr_ops, [&](size_t, const Status& s) -> Status {
      if (!s.ok()) return Error(s.error()).context("set attributes");
      ++out.stats.attrs_fixed;
      return {};
    }));
  // Delta transfers: their basis signature is computed where the
  // destination copy is (copy_files), with the block length chosen here.
  for (auto& t : transfers)
    if (t.method == Method::kDelta)
      t.basis_block_len = signature_block_len(path_last(items[t.item].rel), res[t.item].attrs.size);
  return transfers;
}

// One round of transfers. Every changed metadata file is staged, then
// published by the commit of its stream; the streams (up to
// SyncOptions::streams, balanced by size) share the CPU work of diffs and
// hashes, and all commit before this returns. A delta that found no basis
// becomes a whole transfer (in `transfers`); what vanished or changed type
// while read is counted (and listed in `vanished`); the rest is returned.
Result<std::vector<PassRunner::MetaSent>> PassRunner::send_metadata(
    const std::vector<MetaItem>& items, std::vector<MetaTransfer>& transfers, const std::vector<StatResult>& res,
    std::vector<std::pair<std::string, EntryType>>& vanished, MetaOutcome& out) {
  int streams = std::max(1, std::min({e_.options_.streams, e_.src_.max_streams(), e_.dst_.max_streams()}));
  size_t groups = std::min<size_t>(static_cast<size_t>(streams), transfers.size());
  std::vector<int64_t> sizes(transfers.size());
  for (size_t k = 0; k < transfers.size(); ++k) sizes[k] = res[transfers[k].item].attrs.size;
  const std::vector<std::vector<size_t>> part = balance_by_size(sizes, groups);
  struct StreamOut {
    std::vector<MetaSent> sent;
    std::vector<std::pair<std::string, EntryType>> vanished;
    int64_t vanished_n = 0, unstable = 0, signature_bytes = 0;
  };
  std::vector<StreamOut> outs(groups);
  auto stream = [&](size_t g) -> Status {
    StreamOut& so = outs[g];
    std::vector<CopySpec> specs;
    specs.reserve(part[g].size());
    for (size_t k : part[g]) {
      CopySpec c;
      c.read = transfers[k].spec;
      c.kind = transfers[k].kind;
      c.dst_path = D(items[transfers[k].item].rel);
      c.basis_block_len = transfers[k].basis_block_len;
      specs.push_back(std::move(c));
    }
    auto outcomes = MS_TRY(e_.copy_batch(std::move(specs), wopts_));
    for (size_t n = 0; n < part[g].size(); ++n) {
      const size_t k = part[g][n];
      CopyOutcome& o = outcomes[n];
      const std::string& rel = items[transfers[k].item].rel;
      so.signature_bytes += o.signature_bytes;
      if (o.whole_fallback) {  // no basis for the delta after all
        transfers[k].method = Method::kWhole;
        transfers[k].spec.mode = ReadSpec::Mode::kWhole;
        transfers[k].kind = WriteSpec::Kind::kNew;
      }
      if (o.read == ReadStatus::kVanished) {
        ++so.vanished_n;
        if (items[transfers[k].item].in_state) so.vanished.emplace_back(rel, EntryType::kFile);
        continue;
      }
      if (o.read == ReadStatus::kNotRegular) {
        if (frozen_) return Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(rel)));
        ++so.unstable;
        continue;
      }
      if (o.read == ReadStatus::kFailed)
        return Error(o.error ? *o.error : Error::internal("read failed")).context(fmt::format("read '{}'", printable(rel)));
      if (!o.written) return Error::internal(fmt::format("'{}' was read but not written", printable(rel)));
      so.sent.push_back({k, o.attrs, std::move(o.new_blocks), std::move(o.result)});
    }
    return {};
  };
  MS_CHECK(run_streams(groups, static_cast<int>(groups), stream));
  std::vector<MetaSent> sent;
  for (auto& so : outs) {
    out.stats.vanished += so.vanished_n;
    out.stats.unstable += so.unstable;
    out.stats.signature_bytes += so.signature_bytes;
    for (auto& v : so.vanished) vanished.push_back(std::move(v));
    for (auto& d : so.sent) sent.push_back(std::move(d));
  }
  return sent;
}

// Records what a round published (state entries, the pass's written set,
// counters) and returns what goes again, whole: a patch or delta whose result
// did not hash to the source, and (frozen pass, within frozen_retries) a file
// that changed while read. Other failures end the batch.
Result<std::vector<PassRunner::MetaTransfer>> PassRunner::record_metadata(
    const std::vector<MetaItem>& items, const std::vector<MetaTransfer>& transfers, std::vector<MetaSent>& sent,
    int round, MetaOutcome& out) {
  auto whole_again = [&](const MetaTransfer& t) {
    MetaTransfer w{t.item, Method::kWhole, ReadSpec(S(items[t.item].rel)), WriteSpec::Kind::kNew};
    w.spec.want_blocks = t.spec.want_blocks;
    w.spec.block_size = t.spec.block_size;
    w.spec.block_seed = t.spec.block_seed;
    return w;
  };
  std::vector<MetaTransfer> retry;
  for (MetaSent& s : sent) {
    const MetaTransfer& t = transfers[s.t];
    const MetaItem& it = items[t.item];
    WriteResult& w = s.result;
    out.stats.bytes_sent += w.body_bytes;
    switch (w.status) {
      case WriteStatus::kOk: {
        EntryState es;
        es.attrs = s.attrs;
        es.has_hash = true;
        es.hash = w.hash;
        if (t.spec.want_blocks) {
          es.block_size = t.spec.block_size;
          es.blocks = std::move(s.new_blocks);
        }
        out.puts.emplace_back(it.rel, std::move(es));
        out.written.emplace_back(it.rel, w.hash);
        out.touched.push_back(path_parent(it.rel));
        ++out.stats.metadata_sent;
        spdlog::debug("metadata '{}': {}, {} bytes sent", it.rel, transfer_method_name(t.method), w.body_bytes);
        switch (t.method) {
          case Method::kWhole: ++out.stats.whole; break;
          case Method::kTail: ++out.stats.tails; break;
          case Method::kBlocks: ++out.stats.block_patches; break;
          case Method::kDelta: ++out.stats.deltas; break;
        }
        break;
      }
      case WriteStatus::kHashMismatch:
        // The destination's basis was not what the state said: send it whole.
        if (t.method == Method::kWhole && round >= 1)
          return Error(*w.error).context(fmt::format("copy '{}'", printable(it.rel)));
        retry.push_back(whole_again(t));
        break;
      case WriteStatus::kSourceChanged:
        if (!frozen_) {
          ++out.stats.unstable;
          break;
        }
        if (round >= e_.options_.frozen_retries)
          return Error::conflict(fmt::format("'{}' kept changing during the frozen pass", printable(it.rel)));
        retry.push_back(whole_again(t));
        break;
      case WriteStatus::kFailed:
        // A warm pass racing a destination directory that went away:
        // the next pass recreates it.
        if (!frozen_ && w.error && w.error->code() == ErrorCode::kNotFound) {
          ++out.stats.unstable;
          break;
        }
        return Error(w.error ? *w.error : Error::internal("write failed"))
            .context(fmt::format("copy '{}'", printable(it.rel)));
    }
  }
  return retry;
}

// Applies a batch's outcome to the pass (main thread).
// listed_files: the metadata files the pass's listing saw as regular
// files, for a batch that ran on the state's list alongside the listing
// (nullptr: the batch's items came from the listing). A file that became
// a directory or symlink before the listing was replaced by the diff; one
// that changed after it changed during the pass.
Status PassRunner::merge_metadata(MetaOutcome& out, const std::unordered_set<std::string>* listed_files) {
  for (const auto& rel : out.type_changed) {
    if (listed_files && !listed_files->count(rel)) continue;
    if (frozen_ && !out.error)
      out.error = Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(rel)));
    ++stats_.unstable;
  }
  const PassStats& m = out.stats;
  stats_.metadata_checked += m.metadata_checked;
  stats_.stat_calls += m.stat_calls;
  stats_.vanished += m.vanished;
  stats_.unstable += m.unstable;
  stats_.adopted += m.adopted;
  stats_.hard_links += m.hard_links;
  stats_.attrs_fixed += m.attrs_fixed;
  stats_.bytes_sent += m.bytes_sent;
  stats_.signature_bytes += m.signature_bytes;
  stats_.metadata_sent += m.metadata_sent;
  stats_.whole += m.whole;
  stats_.tails += m.tails;
  stats_.block_patches += m.block_patches;
  stats_.deltas += m.deltas;
  for (auto& [rel, es] : out.puts)
    if (!pending_renames_.count(rel)) put(rel, std::move(es));
  for (auto& w : out.written) written_.push_back(std::move(w));
  for (auto& t : out.touched) touch(t);
  for (auto& c : out.changed) changed(std::move(c));
  for (auto& l : out.linked_from) linked_from_.insert(std::move(l));
  if (out.error) return std::move(*out.error);
  std::erase_if(out.vanished, [&](const auto& v) { return pending_renames_.count(v.first) > 0; });
  return run_deletes(std::move(out.vanished), "delete");
}

// The metadata files the state knows (what the previous pass copied).
void PassRunner::known_metadata(std::vector<MetaItem>& items, Known& known) {
  for (const auto& [dpath, ds] : st_.dirs) {
    std::string parent = path_parent(dpath);
    bool folder = st_.dirs.count(join_path(parent, "cur")) && st_.dirs.count(join_path(parent, "new"));
    DirInfo info = dpath.empty() ? DirInfo{} : classify_dir(path_last(dpath), folder);
    if (info.maildir_sub || info.maildir_tmp) continue;
    for (const auto& [name, es] : ds.entries) {
      if (es.type != EntryType::kFile) continue;
      FileClass cls = classify_file(info, name);
      if (cls == FileClass::kSkip || cls == FileClass::kMessage || cls == FileClass::kImmutable) continue;
      std::string rel = join_path(dpath, name);
      items.push_back({rel, cls, true, false});
      known.emplace(std::move(rel), es);
    }
  }
}

// Runs one metadata batch here and now.
Status PassRunner::run_metadata(std::vector<MetaItem>& items) {
  Known known;
  for (const auto& it : items)
    if (const EntryState* se = it.in_state ? entry(it.rel) : nullptr) known.emplace(it.rel, *se);
  MetaOutcome out;
  if (auto st = metadata_batch(items, known, out); !st.ok()) out.error = std::move(st).error();
  return merge_metadata(out);
}

}  // namespace mailshard
