#!/usr/bin/env python3
"""Applies a plan CSV (user_id,from_server,to_server,size_bytes[,night]) to a
gen_fleet.py folder and writes the resulting fleet to a new folder, checking
each move's source like metrics.py does. Standard library only.

Used by run.sh for the external re-plan check: planning the applied fleet
again must move nothing.

usage: apply_plan.py FLEET_DIR PLAN_CSV OUT_DIR
"""
import os
import shutil
import sys


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    fleet, plan, out = argv[1:]
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(fleet, "servers.csv"), os.path.join(out, "servers.csv"))
    moves = {}
    with open(plan) as fh:
        fh.readline()
        for line in fh:
            if line.strip():
                u, a, b = line.split(",")[:3]
                moves[int(u)] = (int(a), int(b))
    applied = 0
    with open(os.path.join(fleet, "users.csv")) as src, open(os.path.join(out, "users.csv"), "w") as dst:
        dst.write(src.readline())
        for line in src:
            uid, sid, rest = line.split(",", 2)
            mv = moves.get(int(uid))
            if mv is not None:
                if mv[0] != int(sid):
                    sys.stderr.write("user %s is on %s, the plan moves it from %d\n" % (uid, sid, mv[0]))
                    return 1
                sid = str(mv[1])
                applied += 1
            dst.write("%s,%s,%s" % (uid, sid, rest))
    if applied != len(moves):
        sys.stderr.write("%d moves name unknown users\n" % (len(moves) - applied))
        return 1
    print(applied)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
