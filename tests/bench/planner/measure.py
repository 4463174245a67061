#!/usr/bin/env python3
"""Runs a command RUNS times and records its wall times and CPU times (user +
system, from the kernel's rusage of the child: microseconds, where
/usr/bin/time -v prints centiseconds), their best and their median, and its
peak RSS as /usr/bin/time -v reports it. Standard library only.

usage: measure.py [--append] NAME RUNS OUTFILE -- CMD...
writes NAME.measure.json {wall_s, cpu_s (best), wall_median_s, cpu_median_s,
walls, cpus, runs, rss_kb} and NAME.time (the /usr/bin/time -v report of the
run with the largest RSS); CMD's stdout of the last run goes to OUTFILE.
--append adds the runs to those NAME.measure.json holds already: run.sh
alternates one run of our planner with one of the baseline this way, so a
change of load on the shared machine hits both alike.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def main(argv):
    args = argv[1:]
    append = args[0] == "--append"
    if append:
        args = args[1:]
    sep = args.index("--")
    name, runs, out = args[0], int(args[1]), args[2]
    cmd = args[sep + 1:]
    walls, cpus, best_rss = [], [], -1
    if append and os.path.exists(name + ".measure.json"):
        with open(name + ".measure.json") as fh:
            old = json.load(fh)
        walls, cpus, best_rss = old["walls"], old["cpus"], old.get("rss_kb", -1)
    for i in range(runs):
        tfile = "%s.time.%d" % (name, i)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with open(out, "w") as fh:
            subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, stdout=fh, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        rss = 0
        for line in open(tfile):
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1])
        if rss > best_rss:
            best_rss = rss
            os.replace(tfile, name + ".time")
        else:
            os.remove(tfile)
    with open(name + ".measure.json", "w") as fh:
        json.dump(dict(wall_s=min(walls), cpu_s=min(cpus), wall_median_s=statistics.median(walls),
                       cpu_median_s=statistics.median(cpus), walls=walls, cpus=cpus, runs=len(walls),
                       rss_kb=best_rss), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
