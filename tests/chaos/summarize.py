#!/usr/bin/python3
"""Writes the Markdown summary of a chaos results file (chaos.py --results): summarize.py IN OUT."""
import json
import subprocess
import sys


def main(src, dst):
    d = json.load(open(src))
    t, runs = d["total"], d["runs"]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()

    def part(unique):
        rs = [r for r in runs if (r["duplicate_policy"].get("mode") == "reject") == unique]
        return (sum(r["operations"] for r in rs), sum(r["duplicates"] for r in rs),
                sum(r["wrong_final_answers"] for r in rs), ", ".join(str(r["seed"]) for r in rs))

    lines = ["# Chaos run (scripts/chaos.sh) at %s" % rev, "",
             "| figure | all seeds | PayKKa refuses repeats (even seeds) | "
             "PayKKa without uniqueness (odd seeds) |", "|---|---|---|---|"]
    ops_u, dup_u, wrong_u, seeds_u = part(True)
    ops_c, dup_c, wrong_c, seeds_c = part(False)
    lines += [
        "| seeds | %s | %s | %s |" % (", ".join(str(r["seed"]) for r in runs), seeds_u, seeds_c),
        "| operations (mutating RPC attempts) | %d | %d | %d |" % (t["operations"], ops_u, ops_c),
        "| duplicates found (extra upstream objects) | %d | %d | %d |" % (
            t["duplicates"], dup_u, dup_c),
        "| wrong final answers | %d | %d | %d |" % (t["wrong_final_answers"], wrong_u, wrong_c),
        "", "| figure | value |", "|---|---|",
        "| payments missing at PayKKa after the last retry | %d |"
        % t["payments_missing_at_paykka"],
        "| unsettled records left after the reconciler's window | %d |"
        % t["unsettled_left_after_window"],
        "| longest settle time after the faults stopped (s) | %s |"
        % t["max_settle_after_faults_stopped_s"],
        "", "Faults injected (windows), by kind:", "", "| kind | windows |", "|---|---|"]
    lines += ["| %s | %d |" % (k, n) for k, n in t["faults_injected"].items()]
    lines += ["", "Per seed (violations by the fault windows the payment's calls ran in):", ""]
    for r in runs:
        lines.append("- seed %d: %d operations, %d payments, %d callers, policy `%s`, %s s; %s" % (
            r["seed"], r["operations"], r["payments"], r["callers"],
            json.dumps(r["duplicate_policy"]), r["seconds"],
            json.dumps(r["violations_by_fault"]) if r["violations_by_fault"] else "no violation"))
    open(dst, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
