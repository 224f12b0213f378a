#!/usr/bin/python3
"""Turns one bench/run.sh work directory into <out>.json and <out>.md.

usage: report.py WORK_DIR OUT_PREFIX

Reads WORK_DIR/meta.json and WORK_DIR/runs/*.json (one file per load run, as
written by payorch-loadgen / paykka-direct, plus the /proc and sandbox
samples of scenario (e)), computes the ratios and prints every target of the
benchmark issue with PASS or MISS.
"""
import glob
import json
import os
import platform
import statistics
import sys


def load_runs(work):
    runs = {}
    for f in sorted(glob.glob(os.path.join(work, "runs", "*.json"))):
        runs[os.path.basename(f)[:-5]] = json.load(open(f))
    return runs


def reps(runs, prefix):
    return [v for k, v in sorted(runs.items()) if k.startswith(prefix + ".") or k == prefix]


def best_rps(rs):
    return max((r["throughput_rps"] for r in rs), default=0.0)


def mean_lat(rs, q):
    vals = [r["latency_ms"][q] for r in rs]
    return statistics.mean(vals) if vals else 0.0


def errors(rs):
    return sum(r["errors"] + r.get("dropped", 0) for r in rs)


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "mem_gb": round(mem_kb / 1048576, 1), "loadavg_at_report": os.getloadavg()[0]}


# Rows of the cost table: (run prefix, what, process whose CPU is payorch's /
# the caller's, RSA operations (sign + verify pairs) per request).
COST_ROWS = (
    ("a.payorch.peak", "CreateCheckout, mTLS, HTTPS to PayKKa", "payorchd", 1),
    ("a.payorch_plain.peak", "CreateCheckout, plaintext gRPC, HTTPS", "payorchd", 1),
    ("a.payorch_http.peak", "CreateCheckout, mTLS, plain HTTP to PayKKa", "payorchd", 1),
    ("a.direct.peak", "direct Create Session, HTTPS", "direct", 1),
    ("a.direct_http.peak", "direct Create Session, plain HTTP", "direct", 1),
    ("b.payorch.replay.c256", "replay (Redis only), mTLS", "payorchd", 0),
    ("b.payorch_plain.replay.c256", "replay (Redis only), plaintext gRPC", "payorchd", 0),
    ("c.payorch.get_order", "GetOrder, mTLS, HTTPS", "payorchd", 1),
    ("c.direct.query", "direct Query Transaction, HTTPS", "direct", 1),
    ("d.payorch.charge", "ChargeRecurring, mTLS, HTTPS", "payorchd", 1),
    ("d.direct.charge", "direct MIT Initiate, HTTPS", "direct", 1),
)


def mean_cpu(rs, proc):
    vals = [r["cpu"]["cpu_us_per_req"][proc] for r in rs
            if proc in r.get("cpu", {}).get("cpu_us_per_req", {})]
    return statistics.mean(vals) if vals else None


def rsa_cost(runs):
    """Sign and verify CPU us from payorch-signbench, mean of the run's start and end."""
    rs = [runs[k] for k in ("rsa.start", "rsa.end") if k in runs]
    if not rs:
        return None
    return {"sign_us": statistics.mean(r["sign_us"] for r in rs),
            "verify_us": statistics.mean(r["verify_us"] for r in rs)}


def cost_section(runs, summary, target, md):
    """CPU us per request by process, split into RSA and the rest (the caller's own part)."""
    rsa = rsa_cost(runs)
    rows = []
    for prefix, what, proc, rsa_ops in COST_ROWS:
        rs = reps(runs, prefix)
        total = mean_cpu(rs, proc)
        if total is None:
            continue
        rsa_us = rsa_ops * (rsa["sign_us"] + rsa["verify_us"]) if rsa else 0.0
        rows.append({"run": prefix, "what": what, "process": proc, "cpu_us": total,
                     "rsa_us": rsa_us, "own_us": total - rsa_us,
                     "redis_us": mean_cpu(rs, "redis"), "sandbox_us": mean_cpu(rs, "sandbox"),
                     "rps": best_rps(rs)})
    if not rows:
        return
    summary["cost"] = {"rsa": rsa, "rows": rows}
    create = next((r for r in rows if r["run"] == "a.payorch.peak"), None)
    if create:
        target("payorch's own CPU per CreateCheckout <= 60 us (payorchd total - RSA)",
               round(create["own_us"], 1), 60, create["own_us"] <= 60,
               f"payorchd {create['cpu_us']:.0f} us/request, of it RSA {create['rsa_us']:.0f} us "
               f"(sign {rsa['sign_us']:.0f} + verify {rsa['verify_us']:.0f}, payorch-signbench)"
               if rsa else "no RSA figure")
    fmt = lambda v: "" if v is None else f"{v:.0f}"
    md.append("## CPU per request (us, from /proc/<pid>/stat over each measured window)\n")
    if rsa:
        md.append(f"RSA-2048 in this run (payorch-signbench, same key and code, thread CPU time): "
                  f"sign {rsa['sign_us']:.0f} us, verify {rsa['verify_us']:.0f} us. "
                  f"own = total - RSA. Closed loop c=32 unless named.\n")
    md.append("| run | process | total | RSA | own | redis-server | sandbox | req/s |")
    md.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        md.append(f"| {r['what']} | {r['process']} | {r['cpu_us']:.0f} | {r['rsa_us']:.0f} | "
                  f"**{r['own_us']:.0f}** | {fmt(r['redis_us'])} | {fmt(r['sandbox_us'])} | {r['rps']:.0f} |")
    md.append("")


def scaling_section(runs, summary, md):
    """Scenario (f): creates/s and CPU per create vs CPU threads and concurrency."""
    rows = []
    for t in (2, 1):
        for c in (1, 8, 32, 128):
            r = runs.get(f"f.scale.t{t}.c{c}")
            if r is None:
                continue
            rows.append({"cpu_threads": t, "concurrency": c, "rps": r["throughput_rps"],
                         "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
                         "errors": errors([r]),
                         "payorchd_cpu_us": r.get("cpu", {}).get("cpu_us_per_req", {}).get("payorchd"),
                         "payorchd_cores": r.get("cpu", {}).get("cpu_share", {}).get("payorchd")})
    if not rows:
        return
    summary["f_scaling"] = rows
    md.append("## (f) Scaling: CreateCheckout (mTLS, HTTPS) vs payorchd CPU threads and concurrency\n")
    md.append("| --cpu_threads | outstanding | creates/s | p50 / p99 ms | payorchd CPU us / create | payorchd cores busy | errors |")
    md.append("|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = r["payorchd_cpu_us"]
        cores = r["payorchd_cores"]
        md.append(f"| {r['cpu_threads']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
                  f"{'' if cpu is None else f'{cpu:.0f}'} | {'' if cores is None else f'{cores:.2f}'} | {r['errors']} |")
    md.append("")


def ratio_targets(summary, target):
    """GetOrder >= 0.95x and ChargeRecurring >= 0.9x the direct client."""
    for key, name, limit in (("c_get_order", "GetOrder throughput >= 0.95x direct Query Transaction", 0.95),
                             ("d_charge", "ChargeRecurring throughput >= 0.9x direct MIT Initiate", 0.9)):
        c = summary.get(key)
        if c:
            target(name, round(c["ratio"], 3), limit, c["ratio"] >= limit and c["payorch_errors"] == 0,
                   f"payorch {c['payorch_rps']:.0f} req/s vs direct {c['direct_rps']:.0f} req/s; "
                   f"payorch errors {c['payorch_errors']}")


def rss_per_call_target(summary, meta, target):
    """RSS above idle per call in flight at the top of the ramp <= 24 KB."""
    steps = summary.get("e_ramp")
    if not steps:
        return
    top = steps[-1]
    n = top["client_max_outstanding"] or 0
    rss_kb = max(top["payorchd_max_rss_mb"], top["payorchd_hwm_rss_mb"]) * 1024
    per = (rss_kb - meta["payorchd_idle_rss_kb"]) / n if n else 0
    summary["e_rss_per_call_kb"] = per
    target("10,000 in flight: RSS per call in flight <= 24 KB", round(per, 1), 24, 0 < per <= 24,
           f"(max RSS {rss_kb / 1024:.0f} MB - idle {meta['payorchd_idle_rss_kb'] // 1024} MB) / {n} calls")


def main():
    work, out = sys.argv[1], sys.argv[2]
    meta = json.load(open(os.path.join(work, "meta.json")))
    runs = load_runs(work)
    targets = []
    summary = {}
    md = []

    def target(name, value, limit, ok, detail):
        targets.append({"target": name, "measured": value, "limit": limit,
                        "result": "PASS" if ok else "MISS", "detail": detail})

    # (a) CreateCheckout vs direct Create Session
    dp, pp = reps(runs, "a.direct.peak"), reps(runs, "a.payorch.peak")
    if dp and pp:
        d, p = best_rps(dp), best_rps(pp)
        ratio = p / d if d else 0.0
        summary["a_peak"] = {"direct_rps": d, "payorch_rps": p, "ratio": ratio,
                             "direct_errors": errors(dp), "payorch_errors": errors(pp)}
        target("CreateCheckout throughput >= 0.9x direct baseline", round(ratio, 3), 0.9,
               ratio >= 0.9 and errors(pp) == 0,
               f"payorch {p:.0f} req/s vs direct {d:.0f} req/s (best of {len(pp)}); "
               f"payorch errors {errors(pp)}")
    dh, ph = reps(runs, "a.direct.half"), reps(runs, "a.payorch.half")
    if dh and ph:
        rate = ph[0]["rate"]
        add50 = mean_lat(ph, "p50") - mean_lat(dh, "p50")
        add99 = mean_lat(ph, "p99") - mean_lat(dh, "p99")
        summary["a_half"] = {"rate": rate,
                             "direct_p50_ms": mean_lat(dh, "p50"), "direct_p99_ms": mean_lat(dh, "p99"),
                             "payorch_p50_ms": mean_lat(ph, "p50"), "payorch_p99_ms": mean_lat(ph, "p99"),
                             "added_p50_ms": add50, "added_p99_ms": add99,
                             "direct_errors": errors(dh), "payorch_errors": errors(ph)}
        target("added latency p50 at half of payorch's peak <= 1 ms", round(add50, 3), 1.0, add50 <= 1.0,
               f"open loop {rate:.0f}/s: payorch p50 {mean_lat(ph, 'p50'):.2f} ms vs direct "
               f"{mean_lat(dh, 'p50'):.2f} ms (mean of {len(ph)})")
        target("added latency p99 at half of payorch's peak <= 1 ms", round(add99, 3), 1.0, add99 <= 1.0,
               f"open loop {rate:.0f}/s: payorch p99 {mean_lat(ph, 'p99'):.2f} ms vs direct "
               f"{mean_lat(dh, 'p99'):.2f} ms (mean of {len(ph)})")

    dd, pd = reps(runs, "a.direct.halfdirect"), reps(runs, "a.payorch.halfdirect")
    if dd and pd:
        summary["a_half_of_direct_peak"] = {
            "rate": pd[0]["rate"],
            "direct_p50_ms": mean_lat(dd, "p50"), "direct_p99_ms": mean_lat(dd, "p99"),
            "payorch_p50_ms": mean_lat(pd, "p50"), "payorch_p99_ms": mean_lat(pd, "p99"),
            "added_p50_ms": mean_lat(pd, "p50") - mean_lat(dd, "p50"),
            "added_p99_ms": mean_lat(pd, "p99") - mean_lat(dd, "p99"),
            "direct_errors": errors(dd), "payorch_errors": errors(pd)}

    # (b) replay
    rp = reps(runs, "b.payorch.replay.c64") + reps(runs, "b.payorch.replay.c256")
    if rp:
        best = max(rp, key=lambda r: r["throughput_rps"])
        summary["b_replay"] = {"best_rps": best["throughput_rps"], "best_concurrency": best["concurrency"],
                               "p50_ms": best["latency_ms"]["p50"], "p99_ms": best["latency_ms"]["p99"],
                               "errors": errors(rp),
                               "seed": runs.get("b.seed", {}).get("outcomes")}
        target("replay >= 36,000 req/s", round(best["throughput_rps"]), 36000,
               best["throughput_rps"] >= 36000 and errors(rp) == 0,
               f"closed loop c={best['concurrency']}, p50 {best['latency_ms']['p50']:.2f} ms, "
               f"p99 {best['latency_ms']['p99']:.2f} ms, errors {errors(rp)}")

    # (c), (d): ratios, no target in the issue
    for key, dname, pname in (("c_get_order", "c.direct.query", "c.payorch.get_order"),
                              ("d_charge", "d.direct.charge", "d.payorch.charge")):
        dr, pr = reps(runs, dname), reps(runs, pname)
        if dr and pr:
            summary[key] = {"direct_rps": best_rps(dr), "payorch_rps": best_rps(pr),
                            "ratio": best_rps(pr) / best_rps(dr) if best_rps(dr) else 0,
                            "direct_p50_ms": mean_lat(dr, "p50"), "payorch_p50_ms": mean_lat(pr, "p50"),
                            "direct_p99_ms": mean_lat(dr, "p99"), "payorch_p99_ms": mean_lat(pr, "p99"),
                            "direct_errors": errors(dr), "payorch_errors": errors(pr),
                            "payorch_outcomes": pr[-1]["outcomes"], "direct_outcomes": dr[-1]["outcomes"]}

    # (e) ramp
    steps = []
    for n in meta["ramp"].split():
        r = runs.get(f"e.payorch.inflight.{n}")
        if r is None:
            continue
        proc = runs.get(f"e.proc.{n}", {})
        sbx = runs.get(f"e.sandbox.{n}", {})
        steps.append({"concurrency": int(n), "completed": r["completed"], "ok": r["ok"],
                      "errors": r["errors"] + r.get("dropped", 0), "outcomes": r["outcomes"],
                      "throughput_rps": r["throughput_rps"],
                      "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
                      "max_ms": r["latency_ms"]["max"],
                      "client_max_outstanding": r.get("max_outstanding_observed"),
                      "sandbox_max_in_flight": sbx.get("max_in_flight"),
                      "payorchd_max_threads": proc.get("max_threads"),
                      "payorchd_max_rss_mb": round(proc.get("max_rss_kb", 0) / 1024, 1),
                      "payorchd_hwm_rss_mb": round(proc.get("hwm_rss_kb", 0) / 1024, 1)})
    ratio_targets(summary, target)
    if steps:
        summary["e_ramp"] = steps
        top = steps[-1]
        errs = sum(s["errors"] for s in steps)
        thr = max(s["payorchd_max_threads"] or 0 for s in steps)
        rss = max(max(s["payorchd_max_rss_mb"], s["payorchd_hwm_rss_mb"]) for s in steps)
        reached = (top["client_max_outstanding"] or 0) >= 10000
        target("10,000 in flight, 1 s upstream: zero errors", errs, 0, errs == 0 and reached,
               f"{top['client_max_outstanding']} calls outstanding at payorchd; "
               f"sandbox saw at most {top['sandbox_max_in_flight']} at once; errors over the ramp {errs}")
        target("10,000 in flight: payorchd threads <= 64", thr, 64, thr <= 64 and reached,
               f"max Threads in /proc/<pid>/status over the ramp (idle: {meta['payorchd_idle_threads']})")
        target("10,000 in flight: payorchd RSS <= 512 MB", rss, 512, rss <= 512 and reached,
               f"max of sampled VmRSS and VmHWM (idle VmRSS: {meta['payorchd_idle_rss_kb'] // 1024} MB)")
        rss_per_call_target(summary, meta, target)
    cost_md = []
    cost_section(runs, summary, target, cost_md)
    scaling_section(runs, summary, cost_md)

    result = {"meta": meta, "machine": machine(), "summary": summary, "targets": targets, "runs": runs}
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=2)

    # Markdown
    m = result["machine"]
    md.append(f"# payorch benchmark {meta['stamp']}\n")
    md.append(f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gb']} GB, Linux {m['kernel']}; "
              f"load generator, payorchd, paykka-sandbox and redis-server all on it. "
              f"Load average at start {meta.get('loadavg_at_start', '?')}. Git {meta['git']}. Runs of {meta['duration_s']} s, {meta['reps']} repetition(s)"
              f"{' (--quick)' if meta['quick'] else ''}.\n")
    md.append("## Targets\n")
    md.append("| target | measured | limit | result | detail |")
    md.append("|---|---|---|---|---|")
    for t in targets:
        md.append(f"| {t['target']} | {t['measured']} | {t['limit']} | **{t['result']}** | {t['detail']} |")
    md.append("")
    md.append("## Comparisons (payorch vs calling PayKKa directly, same sandbox, same run)\n")
    md.append("| scenario | direct req/s | payorch req/s | ratio | direct p50 / p99 ms | payorch p50 / p99 ms | errors d / p |")
    md.append("|---|---|---|---|---|---|---|")
    if "a_peak" in summary:
        a = summary["a_peak"]
        md.append(f"| (a) create, closed c={meta['peak_concurrency']} | {a['direct_rps']:.0f} | {a['payorch_rps']:.0f} | "
                  f"{a['ratio']:.2f} | | | {a['direct_errors']} / {a['payorch_errors']} |")
    if "a_half" in summary:
        h = summary["a_half"]
        md.append(f"| (a) create, open {h['rate']:.0f}/s (half payorch's peak) | | | | {h['direct_p50_ms']:.2f} / {h['direct_p99_ms']:.2f} | "
                  f"{h['payorch_p50_ms']:.2f} / {h['payorch_p99_ms']:.2f} | {h['direct_errors']} / {h['payorch_errors']} |")
    if "a_half_of_direct_peak" in summary:
        h = summary["a_half_of_direct_peak"]
        md.append(f"| (a) create, open {h['rate']:.0f}/s (half the direct peak; info) | | | | {h['direct_p50_ms']:.2f} / {h['direct_p99_ms']:.2f} | "
                  f"{h['payorch_p50_ms']:.2f} / {h['payorch_p99_ms']:.2f} | {h['direct_errors']} / {h['payorch_errors']} |")
    for key, name in (("c_get_order", "(c) GetOrder vs Query Transaction"),
                      ("d_charge", "(d) ChargeRecurring vs MIT Initiate")):
        if key in summary:
            c = summary[key]
            md.append(f"| {name}, closed c={meta['peak_concurrency']} | {c['direct_rps']:.0f} | {c['payorch_rps']:.0f} | "
                      f"{c['ratio']:.2f} | {c['direct_p50_ms']:.2f} / {c['direct_p99_ms']:.2f} | "
                      f"{c['payorch_p50_ms']:.2f} / {c['payorch_p99_ms']:.2f} | {c['direct_errors']} / {c['payorch_errors']} |")
    if "b_replay" in summary:
        b = summary["b_replay"]
        md.append(f"| (b) replay (Redis), closed c={b['best_concurrency']} | n/a | {b['best_rps']:.0f} | | | "
                  f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | - / {b['errors']} |")
    md.append("")
    md.extend(cost_md)
    if steps:
        md.append("## (e) Many in flight: sandbox latency 1 s, closed loop\n")
        md.append("| outstanding | completed | errors | req/s | p50 ms | p99 ms | sandbox max in flight | payorchd threads | RSS MB (max / HWM) |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        for s in steps:
            md.append(f"| {s['client_max_outstanding']} | {s['completed']} | {s['errors']} | {s['throughput_rps']:.0f} | "
                      f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['sandbox_max_in_flight']} | "
                      f"{s['payorchd_max_threads']} | {s['payorchd_max_rss_mb']} / {s['payorchd_hwm_rss_mb']} |")
        md.append("")
        md.append("The sandbox's concurrency is bounded by Little's law: in flight there = arrival rate x 1 s, "
                  "and the arrival rate is bounded by the CPU both processes spend on RSA (payorch signs each "
                  "request, the sandbox signs each response) on 2 shared cores. Calls beyond that wait inside "
                  "payorchd (in the signing queue), which is what the thread and RSS figures measure.\n")
    prof = runs.get("profile.categories")
    if prof:
        md.append(f"## Profile: payorchd CPU per CreateCheckout (perf, {prof['samples']} samples, "
                  f"{prof['cpu_us_per_request']:.0f} us of payorchd CPU per request)\n")
        md.append("| part | share | CPU us / request |")
        md.append("|---|---|---|")
        for b in prof["buckets"]:
            md.append(f"| {b['bucket']} | {b['share'] * 100:.1f}% | {b['cpu_us_per_request']:.0f} |")
        md.append("")
        md.append("Threads: " + ", ".join(f"{t['thread']} {t['share'] * 100:.0f}%" for t in prof["threads"][:6]) + "\n")
    md.append(f"payorchd: `{meta['payorchd_args']}`; idle {meta['payorchd_idle_threads']} threads, "
              f"{meta['payorchd_idle_rss_kb'] // 1024} MB RSS; peak RSS over the whole run "
              f"{meta['payorchd_final_hwm_rss_kb'] // 1024} MB.\n")
    with open(out + ".md", "w") as f:
        f.write("\n".join(md))

    print()
    print("== targets")
    for t in targets:
        print(f"  {t['result']:4}  {t['target']}: {t['measured']} (limit {t['limit']}) - {t['detail']}")
    for key in ("c_get_order", "d_charge"):
        if key in summary:
            c = summary[key]
            print(f"  info  {key}: payorch {c['payorch_rps']:.0f} req/s vs direct {c['direct_rps']:.0f} "
                  f"(ratio {c['ratio']:.2f}); p50 {c['payorch_p50_ms']:.2f} vs {c['direct_p50_ms']:.2f} ms")


if __name__ == "__main__":
    main()
