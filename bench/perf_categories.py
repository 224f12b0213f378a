#!/usr/bin/python3
"""Where payorchd's CPU goes, per request: buckets `perf script` samples.

usage: perf script -i perf.data | perf_categories.py FREQ_HZ REQUESTS OUT.json

Each cpu-clock sample is attributed to the first frame, walking from the leaf
towards the root, that belongs to a known part of the request path (so a
malloc or a send() called from libcurl counts as HTTP, a memcpy inside
nlohmann as JSON). FREQ_HZ is perf's sampling frequency (one sample is
1/FREQ_HZ s of CPU), REQUESTS the calls completed while recording; the output
gives CPU microseconds per request per bucket.
"""
import collections
import json
import sys

RULES = [  # (bucket, predicate on (symbol, dso))
    ("thread hand-offs (futex wake/wait, context switches)",
     lambda s, d: "futex" in s or "finish_task_switch" in s or "schedule" in s),
    ("kernel TCP (loopback send/recv, all sockets)",
     lambda s, d: "kernel" in d and ("tcp_" in s or "sock_" in s or "__send" in s or "recv" in s
                                     or "ip_" in s or "skb" in s)),
    ("epoll", lambda s, d: "epoll" in s),
    # libcrypto is stripped: its samples are told apart by thread. RSA runs
    # only on the payorch-cpu pool; elsewhere (the io loop's HTTPS, gRPC's
    # mTLS) it is TLS record and handshake work, as is libssl.
    ("TLS (libssl; libcrypto outside the signing pool)",
     lambda s, d, t: "libssl" in d or ("libcrypto" in d and not t.startswith("payorch-cpu"))),
    ("RSA sign/verify (OpenSSL)", lambda s, d: "libcrypto" in d),
    ("JSON build/parse (nlohmann)", lambda s, d: "nlohmann" in s),
    ("request log + metrics", lambda s, d: "RequestLog" in s or "prometheus" in s or "Metrics" in s),
    ("Redis (hiredis + store)", lambda s, d: "hiredis" in d or "Redis" in s or "redis" in s),
    ("HTTP to PayKKa (libcurl + transport)", lambda s, d: "libcurl" in d or "Curl" in s or "libnghttp" in d),
    ("gRPC + protobuf", lambda s, d: "libgrpc" in d or "libprotobuf" in d or "libupb" in d or "grpc::" in s
     or "grpc_core" in s or "payorch::v1::" in s or "google::protobuf" in s),
    ("PayKKa mapping/signing glue (Base64, percent-encoding)",
     lambda s, d: "paykka" in s or "Base64" in s or "Percent" in s),
    ("service logic", lambda s, d: "payorch::service" in s),
    ("event loop (libevent)", lambda s, d: "libevent" in d),
    ("absl (mutex, status, time)", lambda s, d: "libabsl" in d),
]


def bucket(frames, comm=""):
    for sym, dso in frames:
        for name, pred in RULES:
            if pred.__code__.co_argcount == 3:
                if pred(sym, dso, comm):
                    return name
            elif pred(sym, dso):
                return name
    if frames and all("kernel" in d for _, d in frames):
        return "kernel only (scheduler, softirq, idle)"
    return "other (libc, libstdc++, unresolved)"


def main():
    freq, requests, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    counts = collections.Counter()
    by_thread = collections.Counter()
    frames, comm, total = [], None, 0

    def flush():
        nonlocal total
        if comm is not None:
            counts[bucket(frames, comm)] += 1
            by_thread[comm] += 1
            total += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            frames, comm = [], None
            continue
        if not line[0].isspace():
            comm = line.split()[0]
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = rest[rest.rfind("(") + 1:-1] if rest.endswith(")") else ""
        sym = rest[:rest.rfind("(")].strip() if "(" in rest else rest
        frames.append((sym, dso))
    flush()
    us = lambda n: n / freq / requests * 1e6 if requests else 0.0
    result = {"samples": total, "freq_hz": freq, "requests": requests,
              "cpu_us_per_request": us(total), "buckets": [], "threads": []}
    for name, n in counts.most_common():
        result["buckets"].append({"bucket": name, "share": n / total, "samples": n,
                                  "cpu_us_per_request": us(n)})
    for name, n in by_thread.most_common():
        result["threads"].append({"thread": name, "share": n / total, "samples": n})
    json.dump(result, open(out, "w"), indent=2)
    for b in result["buckets"]:
        print(f"  {b['share'] * 100:5.1f}%  {b['cpu_us_per_request']:7.1f} us/req  {b['bucket']}")
    print(f"  total {result['cpu_us_per_request']:.1f} us of payorchd CPU per request ({total} samples)")
    print("  by thread: " + ", ".join(f"{t['thread']} {t['share'] * 100:.0f}%" for t in result["threads"][:6]))


if __name__ == "__main__":
    main()
