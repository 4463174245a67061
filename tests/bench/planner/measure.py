#!/usr/bin/env python3
"""Runs a command RUNS times and records its best wall time, its best CPU
time (user + system, from the kernel's rusage of the child: microseconds,
where /usr/bin/time -v prints centiseconds) and its peak RSS as
/usr/bin/time -v reports it. Standard library only.

usage: measure.py NAME RUNS OUTFILE -- CMD...
writes NAME.measure.json {wall_s, cpu_s, runs} and NAME.time (the
/usr/bin/time -v report of the run with the largest RSS); CMD's stdout of
the last run goes to OUTFILE.
"""
import json
import os
import resource
import subprocess
import sys
import time


def main(argv):
    sep = argv.index("--")
    name, runs, out = argv[1], int(argv[2]), argv[3]
    cmd = argv[sep + 1:]
    best_wall = best_cpu = None
    best_rss = -1
    for i in range(runs):
        tfile = "%s.time.%d" % (name, i)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with open(out, "w") as fh:
            subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, stdout=fh, check=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall = wall if best_wall is None else min(best_wall, wall)
        best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
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
        json.dump(dict(wall_s=best_wall, cpu_s=best_cpu, runs=runs), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
