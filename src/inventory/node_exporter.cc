#include "inventory/node_exporter.h"

#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {
namespace {

size_t depth(std::string_view path) {
  size_t n = 0;
  for (auto& part : split(path, '/'))
    if (!part.empty()) ++n;
  return n;
}

std::string_view strip_trailing_slashes(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  return p;
}

struct Mount {
  std::string device, fstype, mountpoint;
  double size = NAN, avail = NAN, free = NAN;
  bool device_error = false;
  size_t order = 0;  // first appearance, for a stable choice
};

}  // namespace

bool mount_holds(std::string_view mountpoint, std::string_view path) {
  mountpoint = strip_trailing_slashes(mountpoint);
  path = strip_trailing_slashes(path);
  if (mountpoint == "/") return !path.empty() && path.front() == '/';
  if (!starts_with(path, mountpoint)) return false;
  return path.size() == mountpoint.size() || path[mountpoint.size()] == '/';
}

Result<ServerMetrics> node_metrics_for(const std::vector<PromSample>& samples, std::string_view mail_root) {
  std::vector<Mount> mounts;
  // By (device, fstype, mountpoint): a page with many mounts stays linear-ish.
  std::map<std::tuple<std::string_view, std::string_view, std::string_view>, size_t> index;
  auto mount_of = [&](const PromSample& s) -> Mount& {
    auto key = std::tuple{s.label("device"), s.label("fstype"), s.label("mountpoint")};
    auto [it, fresh] = index.emplace(key, mounts.size());
    if (fresh) {
      mounts.push_back({std::string(std::get<0>(key)), std::string(std::get<1>(key)), std::string(std::get<2>(key))});
      mounts.back().order = mounts.size() - 1;
    }
    return mounts[it->second];
  };
  ServerMetrics out;
  std::set<std::string> cpus;
  std::map<std::string, double> disk_io;  // node_disk_io_time_seconds_total by device ("vdb")
  for (const auto& s : samples) {
    if (s.name == "node_load1" && !(std::isfinite(s.value) && s.value >= 0))
      return Error::corrupt(fmt::format("node_load1 {} is not a load average (a finite number >= 0)", s.value));
    if (s.name == "node_filesystem_size_bytes") mount_of(s).size = s.value;
    else if (s.name == "node_filesystem_avail_bytes") mount_of(s).avail = s.value;
    else if (s.name == "node_filesystem_free_bytes") mount_of(s).free = s.value;
    else if (s.name == "node_filesystem_device_error") mount_of(s).device_error = s.value == 1;
    else if (s.name == "node_load1") out.load1 = s.value;
    else if (s.name == "node_cpu_seconds_total") cpus.insert(std::string(s.label("cpu")));
    else if (s.name == "node_disk_io_time_seconds_total" && std::isfinite(s.value) && s.value >= 0)
      disk_io[std::string(s.label("device"))] = s.value;
  }
  out.cpus = static_cast<int>(cpus.size());

  const Mount* best = nullptr;
  std::set<std::string> seen;
  for (const auto& m : mounts) {
    if (std::isnan(m.size)) continue;
    seen.insert(m.mountpoint);
    if (m.device_error || !mount_holds(m.mountpoint, mail_root)) continue;
    if (!best) {
      best = &m;
      continue;
    }
    size_t d = depth(m.mountpoint), bd = depth(best->mountpoint);
    if (d > bd || (d == bd && best->fstype == "rootfs" && m.fstype != "rootfs")) best = &m;
  }
  if (!best) {
    std::vector<std::string> mp(seen.begin(), seen.end());
    return Error::corrupt(fmt::format("no node_filesystem_size_bytes sample covers '{}' (mountpoints: {})",
                                      printable(mail_root), mp.empty() ? "none" : printable(join(mp, ", "), 300)));
  }
  // A byte count as int64 can hold, and then some room: at most 2^53 (8 PiB,
  // exact in a double). 1e30 used to wrap to a negative int64 ("-8192.0 PiB").
  auto usable = [](double v) { return std::isfinite(v) && v >= 0 && v <= static_cast<double>(int64_t{1} << 53); };
  if (!usable(best->size) || !usable(best->avail))
    return Error::corrupt(fmt::format("mountpoint '{}': node_filesystem_size_bytes {} / node_filesystem_avail_bytes {} "
                                      "are not usable byte counts",
                                      printable(best->mountpoint), best->size, best->avail));
  if (best->avail > best->size)
    return Error::corrupt(fmt::format("mountpoint '{}': node_filesystem_avail_bytes {} is larger than "
                                      "node_filesystem_size_bytes {}",
                                      printable(best->mountpoint), best->avail, best->size));
  out.fs_size_bytes = static_cast<int64_t>(best->size);
  out.fs_avail_bytes = static_cast<int64_t>(best->avail);
  out.fs_free_bytes = usable(best->free) && best->free <= best->size ? static_cast<int64_t>(best->free) : -1;
  out.mountpoint = best->mountpoint;
  out.device = best->device;
  out.fstype = best->fstype;
  // node_disk_* name the device without /dev/ ("/dev/vdb" -> "vdb").
  std::string dev = best->device.rfind("/dev/", 0) == 0 ? best->device.substr(5) : best->device;
  if (auto it = disk_io.find(dev); !dev.empty() && it != disk_io.end()) out.disk_io_seconds = it->second;
  return out;
}

}  // namespace mailshard
