// Reading a server's disk and load from node_exporter samples.
// Pure functions; thread-safe.
#pragma once

#include <string_view>
#include <vector>

#include "core/metrics_source.h"
#include "inventory/prometheus_parser.h"

namespace mailshard {

// True when `mountpoint` holds `path`: equal, or a parent by whole path
// components ("/srv/mail" holds "/srv/mail/x" but not "/srv/mailx").
bool mount_holds(std::string_view mountpoint, std::string_view path);

// The filesystem that holds `mail_root` and the load, from node_exporter's
// node_filesystem_{size,avail,free}_bytes, node_filesystem_device_error,
// node_load1, node_cpu_seconds_total and node_disk_io_time_seconds_total samples:
//  - the mount is the one with the longest mountpoint holding mail_root;
//  - mounts reporting device_error 1 are skipped (their figures are stale);
//  - for several entries on the same mountpoint (over-mounts), "rootfs" is
//    skipped in favour of the real filesystem, then the first one listed wins;
//  - cpus = distinct "cpu" labels of node_cpu_seconds_total (0 if absent);
//  - a missing node_load1 reads as 0;
//  - disk_io_seconds is node_disk_io_time_seconds_total of the mount's device
//    ("/dev/vdb" is device="vdb"), -1 when absent.
// Errors: kCorrupt ("no node_filesystem_size_bytes sample covers '/srv/mail'
// (mountpoints: /boot, /data)"; a size/avail that is missing, negative, not
// finite or over 2^53; avail larger than size; a node_load1 that is negative
// or not finite).
Result<ServerMetrics> node_metrics_for(const std::vector<PromSample>& samples, std::string_view mail_root);

}  // namespace mailshard
