#include "core/transport.h"

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

Status check_relative_path(const std::string& path) {
  auto bad = [&](std::string_view why) {
    return Error::invalid(fmt::format("invalid path '{}': {}", printable(path), why));
  };
  if (path.empty()) return {};
  if (path.size() > 4096) return bad("longer than 4096 bytes");
  if (path.front() == '/') return bad("absolute paths are not allowed");
  if (path.find('\0') != std::string::npos) return bad("NUL byte");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view comp(path.data() + start, end - start);
    if (comp.empty()) return bad("empty component");
    if (comp == "..") return bad("'..' component");
    if (comp == ".") return bad("'.' component");
    if (comp.size() > 255) return bad("component longer than 255 bytes");
    start = end + 1;
  }
  return {};
}

Result<std::vector<Result<Signature>>> Transport::signatures(const std::vector<SignatureRequest>& requests) {
  std::vector<Result<Signature>> out;
  out.reserve(requests.size());
  for (const auto& r : requests) out.push_back(signature(r));
  return out;
}

Status Transport::size_homes(const std::vector<std::string>& homes, const HomeSizeSink& sink) {
  (void)homes;
  (void)sink;
  return Error::unsupported(fmt::format("{} cannot size mailbox homes", describe()));
}

Result<std::vector<CopyOutcome>> copy_files(Transport& src, Transport& dst, std::vector<CopySpec> specs,
                                            const WriterOptions& options) {
  std::vector<CopyOutcome> out(specs.size());
  // Delta bases computed here, on the destination (one batch: an agent
  // pipelines them).
  {
    std::vector<SignatureRequest> sq;
    std::vector<size_t> which;
    for (size_t i = 0; i < specs.size(); ++i) {
      const CopySpec& c = specs[i];
      if (c.read.mode != ReadSpec::Mode::kDelta || !c.read.signature.empty()) continue;
      sq.push_back({c.dst_path, c.basis_block_len, 0});
      which.push_back(i);
    }
    if (!sq.empty()) {
      auto sigs = dst.signatures(sq);
      if (!sigs.ok()) return std::move(sigs).error().context("signatures " + dst.describe());
      if (sigs->size() != sq.size()) return Error::internal("signatures: wrong number of results");
      for (size_t k = 0; k < which.size(); ++k) {
        CopySpec& c = specs[which[k]];
        Result<Signature>& sig = (*sigs)[k];
        if (!sig.ok()) {
          ErrorCode code = sig.error().code();
          if (code != ErrorCode::kNotFound && code != ErrorCode::kInvalidInput)
            return Error(sig.error()).context(fmt::format("signature of '{}'", printable(c.dst_path)));
          c.read.mode = ReadSpec::Mode::kWhole;  // no basis after all
          c.read.offset = 0;
          c.kind = WriteSpec::Kind::kNew;
          out[which[k]].whole_fallback = true;
          continue;
        }
        out[which[k]].signature_bytes = static_cast<int64_t>(sig->bytes.size());
        c.read.signature = std::move(sig->bytes);
      }
    }
  }
  if (specs.empty()) return out;
  std::vector<ReadSpec> reads;
  reads.reserve(specs.size());
  for (auto& c : specs) reads.push_back(std::move(c.read));
  auto reader = src.open_reader(std::move(reads));
  if (!reader.ok()) return std::move(reader).error().context("read source " + src.describe());
  auto writer = dst.open_writer(options);
  if (!writer.ok()) return std::move(writer).error().context("write destination " + dst.describe());
  std::vector<size_t> written;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto item = (*reader)->next();
    if (!item.ok()) return std::move(item).error().context("read source " + src.describe());
    CopyOutcome& o = out[i];
    o.read = item->status;
    o.error = std::move(item->error);
    if (item->status != ReadStatus::kOk) continue;
    SourceFile& file = *item->file;
    o.attrs = file.attrs();
    WriteSpec ws;
    ws.path = std::move(specs[i].dst_path);
    ws.kind = specs[i].kind;
    ws.attrs = o.attrs;
    if (auto st = (*writer)->write(ws, file); !st.ok())
      return std::move(st).error().context(fmt::format("copy '{}'", printable(ws.path)));
    auto trailer = file.finish();
    if (!trailer.ok()) return std::move(trailer).error().context("read source " + src.describe());
    o.new_blocks = std::move(trailer->new_blocks);
    written.push_back(i);
  }
  auto results = (*writer)->commit();
  if (!results.ok()) return std::move(results).error().context("write destination " + dst.describe());
  if (results->size() != written.size()) return Error::internal("the writer returned the wrong number of results");
  for (size_t k = 0; k < written.size(); ++k) {
    out[written[k]].written = true;
    out[written[k]].result = std::move((*results)[k]);
  }
  return out;
}

Result<std::vector<CopyOutcome>> Transport::pull(const PeerRef& peer, std::vector<CopySpec> specs,
                                                 const WriterOptions& options) {
  (void)specs;
  (void)options;
  return Error::unsupported(fmt::format("{} cannot reach peer {} directly", describe(), peer.name));
}

std::string path_parent(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? std::string() : p.substr(0, s);
}

std::string path_last(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  std::string out;
  out.reserve(a.size() + 1 + b.size());
  out.append(a).push_back('/');
  out.append(b);
  return out;
}

}  // namespace mailshard
