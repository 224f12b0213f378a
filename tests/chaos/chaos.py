#!/usr/bin/python3
"""Seeded chaos run: payorch's exactly-once promise under real faults.

A real multi-process deployment on loopback: one redis-server (no persistence), the
paykka-sandbox, and 2-3 payorchd replicas. Many concurrent callers send CreateCheckout and
ChargeRecurring calls, several callers per trans_id on different replicas, each retrying what
payorch says is retryable. Meanwhile a schedule drawn from the seed injects, one window after
another: upstream timeouts after commit, connection resets, keep-alive connections closed
(before and after commit), 5xx, 429, proxy HTML 4xx pages (before and after commit), delayed
visibility of committed objects, replica SIGKILL (and restart), replica SIGSTOP past the
lease (and SIGCONT), and Redis restarts that lose every key.

Then the faults stop, no caller retries, and the reconciler's window runs. The invariants,
checked against the sandbox's own records:
  1. at most one upstream object (session or charge) per trans_id;
  2. no unsettled record (UNKNOWN or INFLIGHT) left in Redis, and every replica's
     payorch_unsettled_records gauge at 0, within the window;
  3. every caller's final answer (after its last retry) equals PayKKa's truth: the session
     or order the sandbox holds for the trans_id.

  chaos.py --bin-dir build/bin --gen-dir build/gen/python --seeds 1,2 --duration 40
Exit status 0 when every invariant holds; the figures go to stdout and --results (JSON).
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import payorch_client  # noqa: E402  (error_info: reason and RetryInfo of a failure)

MERCHANT, APP_ID, CLIENT_KEY = "M100001", "APP100001", "ck_chaos_100001"
CREATE_PATHS = ("/v3/payment/acq/session", "/v3/payment/acq")
LEASE_S, PAYKKA_TIMEOUT_S = 3, 1
FAULT_KINDS = (
    "timeout_after_commit", "reset", "keepalive_close_before_commit",
    "keepalive_close_after_commit", "http_5xx", "http_429", "proxy_4xx",
    "proxy_after_commit", "delayed_visibility", "replica_sigkill", "replica_sigstop",
    "redis_restart",
)
# Refusals of a repeated trans_id in wordings payorch must not depend on.
DUPLICATE_WORDINGS = (
    {"http_status": 400, "ret_code": "200104", "ret_msg": "Transaction already exists"},
    {"http_status": 409, "ret_code": "010001", "ret_msg": "trans_id has been used"},
    {"http_status": 400, "ret_code": "999001", "ret_msg": "Repeated merchant order number"},
    # Seed 8: the code the merchant config lists (duplicate_trans_id_codes, default
    # ["010000"]), so the duplicate fast path (unknown until the quiet period ends) runs.
    {"http_status": 400, "ret_code": "010000", "ret_msg": "duplicate trans_id"},
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


class Redis:
    """A redis-server child (no persistence) and a minimal RESP client."""

    def __init__(self, workdir):
        self.dir, self.port, self.proc = workdir, free_port(), None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def command(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return self._read(s.makefile("rb"))

    def _read(self, f):
        line = f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            return [self._read(f) for _ in range(int(rest))]
        raise RuntimeError("bad RESP reply %r" % line)

    def unsettled_records(self):
        """Idempotency records in state UNKNOWN or INFLIGHT."""
        left, cursor = [], "0"
        while True:
            cursor, keys = self.command("SCAN", cursor, "MATCH", "payorch:idem:*", "COUNT", 1000)
            for k in keys:
                state = self.command("HGET", k, "state")
                if state in ("UNKNOWN", "INFLIGHT"):
                    left.append((k, state))
            if cursor == "0":
                return left


class Deployment:
    """redis-server, paykka-sandbox and the payorchd replicas, stopped by PID."""

    def __init__(self, bin_dir, workdir, replicas, duplicate_policy, flags=None):
        self.bin_dir, self.dir = bin_dir, workdir
        self.flags = flags if flags is not None else [
            "--lease=%ds" % LEASE_S, "--paykka_timeout=%ds" % PAYKKA_TIMEOUT_S,
            "--reconcile_interval=250ms", "--reconcile_max_backoff=2s"]
        self.redis = Redis(workdir)
        self.replicas = [{"grpc": free_port(), "http": free_port(), "proc": None,
                          "stopped": False} for _ in range(replicas)]
        self.duplicate_policy = duplicate_policy
        self.sandbox = None
        self.sandbox_url = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        subprocess.run(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out merchant.pem "
            "2>/dev/null && openssl pkey -in merchant.pem -pubout -out merchant_pub.pem",
            shell=True, check=True, cwd=self.dir)
        self.redis.start()
        with open(self.path("sandbox.json"), "w") as f:
            json.dump({"merchants": [{"merchant_id": MERCHANT, "app_id": APP_ID,
                                      "public_key_file": "merchant_pub.pem",
                                      "client_key": CLIENT_KEY}]}, f)
        self.sandbox = subprocess.Popen(
            [os.path.join(self.bin_dir, "paykka-sandbox"), "--listen=127.0.0.1:0",
             "--config=" + self.path("sandbox.json"),
             "--platform-public-key-out=" + self.path("platform_pub.pem")],
            stdout=subprocess.PIPE, stderr=open(self.path("sandbox.log"), "w"), text=True)
        line = self.sandbox.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError("sandbox did not start: %r" % line)
        self.sandbox_url = "http://" + line.split()[1]
        self.sandbox_call("PUT", "/sandbox/duplicate-trans-id", self.duplicate_policy)
        with open(self.path("merchants.json"), "w") as f:
            json.dump({"merchants": [{
                "merchant_id": MERCHANT, "app_id": APP_ID,
                "private_key_file": self.path("merchant.pem"),
                "paykka_public_key_file": self.path("platform_pub.pem"),
                "verify_response_signatures": True, "client_key": CLIENT_KEY,
                "base_url": self.sandbox_url}]}, f)
        for i in range(len(self.replicas)):
            self.start_replica(i)
        for i in range(len(self.replicas)):
            self.wait_ready(i)

    def start_replica(self, i):
        r = self.replicas[i]
        r["proc"] = subprocess.Popen(
            [os.path.join(self.bin_dir, "payorchd"),
             "--grpc_listen=127.0.0.1:%d" % r["grpc"], "--http_listen=127.0.0.1:%d" % r["http"],
             "--merchants_config=" + self.path("merchants.json"),
             "--redis_url=" + self.redis.url(), "--log_level=error", "--drain_grace=1s",
             "--paykka_allow_http", "--insecure_plaintext"]
            + self.flags,
            stdout=subprocess.DEVNULL, stderr=open(self.path("payorchd-%d.log" % i), "a"))
        r["stopped"] = False

    def wait_ready(self, i, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/readyz" % self.replicas[i]["http"], timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError("payorchd %d not ready" % i)

    def metric(self, i, name):
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/metrics" % self.replicas[i]["http"], timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " ") or line.startswith(name + "{"):
                        return float(line.rsplit(" ", 1)[1])
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return None

    def sandbox_call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.sandbox_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        for r in self.replicas:
            if r["proc"]:
                if r["stopped"]:
                    r["proc"].send_signal(signal.SIGCONT)
                r["proc"].kill()
                r["proc"].wait()
        if self.sandbox:
            self.sandbox.kill()
            self.sandbox.wait()
        self.redis.kill()


class Payment:
    """One trans_id and the request every caller of it sends."""

    def __init__(self, kind, request):
        self.kind, self.request = kind, request
        self.faults_seen = set()  # fault windows its calls ran in
        self.answers = []  # per caller: ("ok", object id) or ("error", code, reason)


class Chaos:
    def __init__(self, args, seed):
        self.args, self.seed, self.rng = args, seed, random.Random(seed)
        self.ops, self.ops_by_result = 0, {}
        self.faults = {k: 0 for k in FAULT_KINDS}
        self.lock = threading.Lock()
        self.stop_faults = threading.Event()
        self.active = set()  # fault kinds in force now
        # Odd seeds: a PayKKa without trans_id uniqueness (every duplicate payorch sends is
        # counted) and no Redis data loss (nothing could then prevent a duplicate).
        # Even seeds: PayKKa refuses repeats, in a wording drawn from the seed, and Redis
        # restarts lose data.
        self.unique_at_paykka = seed % 2 == 0
        if self.unique_at_paykka:
            # Seeds 2, 4, 6 use the three unlisted wordings in turn, seed 8 the listed one.
            wording = DUPLICATE_WORDINGS[(seed // 2 - 1) % len(DUPLICATE_WORDINGS)]
            self.duplicate_policy = dict(wording, mode="reject")
        else:
            self.duplicate_policy = {"mode": "create"}

    # --- callers ---------------------------------------------------------------------------

    def channel_stubs(self):
        self.stubs = []
        for r in self.dep.replicas:
            ch = grpc.insecure_channel("127.0.0.1:%d" % r["grpc"])
            self.stubs.append(pb_grpc.PaymentOrchestratorStub(ch))

    def call(self, payment, replica, timeout=4.0):
        stub = self.stubs[replica]
        rpc = stub.CreateCheckout if payment.kind == "checkout" else stub.ChargeRecurring
        try:
            resp = rpc(payment.request, timeout=timeout)
            oid = resp.session_id if payment.kind == "checkout" else resp.order.order_id
            return ("ok", oid), None
        except grpc.RpcError as err:
            reason, delay, _ = payorch_client.error_info(err)
            return ("error", err.code().name, reason), delay

    def count(self, result):
        key = result[0] if result[0] == "ok" else "%s/%s" % (result[1], result[2] or "-")
        with self.lock:
            self.ops += 1
            self.ops_by_result[key] = self.ops_by_result.get(key, 0) + 1

    @staticmethod
    def is_final(result):
        if result[0] == "ok":
            return True
        # Definitive refusals; everything else is worth a retry with the same trans_id.
        return result[1] in ("FAILED_PRECONDITION", "ALREADY_EXISTS", "INVALID_ARGUMENT")

    def caller(self, payment, rng, attempts):
        result = None
        for _ in range(attempts):
            payment.faults_seen.update(self.active)
            result, delay = self.call(payment, rng.randrange(len(self.stubs)))
            self.count(result)
            if self.is_final(result):
                break
            time.sleep(min(delay if delay is not None else 0.1, 0.5) * rng.uniform(0.5, 1.0))
        payment.answers.append(result)

    def run_callers(self, next_payment, duration):
        """Callers until `duration` has passed: new payments keep coming, each with 1-3
        callers that run at the same time (adjacent in the queue), on random replicas."""
        rng = random.Random(self.seed * 7919)
        queue, lock, end = [], threading.Lock(), time.time() + duration

        def worker(wid):
            wrng = random.Random(self.seed * 104729 + wid)
            while True:
                with lock:
                    if not queue:
                        if time.time() >= end:
                            return
                        p = next_payment()
                        queue.extend([p] * rng.choice((1, 2, 3)))
                    p = queue.pop(0)
                self.caller(p, wrng, self.args.attempts)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.args.callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # --- faults ----------------------------------------------------------------------------

    def sandbox_rule(self, kind, rate):
        base = {"endpoint": "*"}
        if kind == "timeout_after_commit":
            return [dict(base, timeout_after_commit_rate=rate)]
        if kind == "reset":
            return [dict(base, reset_rate=rate)]
        if kind == "keepalive_close_before_commit":
            return [dict(base, close_before_commit_rate=rate, only_reused_connections=True)]
        if kind == "keepalive_close_after_commit":
            return [dict(base, close_after_commit_rate=rate, only_reused_connections=True)]
        if kind == "http_5xx":
            return [dict(base, http_status=self.rng.choice((500, 502, 503)), error_rate=rate)]
        if kind == "http_429":
            return [dict(base, http_status=429, error_rate=rate)]
        if kind == "proxy_4xx":
            return [dict(base, proxy_status=self.rng.choice((404, 408, 409, 425, 499)),
                         proxy_rate=rate)]
        if kind == "proxy_after_commit":
            return [dict(base, proxy_status=self.rng.choice((499, 502, 504)), proxy_rate=rate,
                         proxy_after_commit=True)]
        if kind == "delayed_visibility":
            # Committed, invisible to queries for a while, and the answer lost. The delay
            # stays within --paykka_timeout: payorch's quiet period assumes PayKKa shows what
            # it committed within that time (a longer delay is a documented limit).
            return [dict(endpoint=p, visibility_delay_ms=int(PAYKKA_TIMEOUT_S * 700),
                         timeout_after_commit_rate=rate) for p in CREATE_PATHS]
        return None

    def inject(self, kind):
        dep = self.dep
        rules = self.sandbox_rule(kind, self.rng.uniform(0.2, 0.5))
        if rules is not None:
            dep.sandbox_call("PUT", "/sandbox/faults",
                             {"seed": self.rng.randrange(1 << 30), "rules": rules})
            self.stop_faults.wait(self.rng.uniform(1.0, 3.0))
            dep.sandbox_call("DELETE", "/sandbox/faults")
            return
        i = self.rng.randrange(len(dep.replicas))
        r = dep.replicas[i]
        if kind == "replica_sigkill":
            r["proc"].kill()
            r["proc"].wait()
            self.stop_faults.wait(self.rng.uniform(0.5, 1.5))
            dep.start_replica(i)
            dep.wait_ready(i)
        elif kind == "replica_sigstop":
            r["proc"].send_signal(signal.SIGSTOP)
            r["stopped"] = True
            time.sleep(LEASE_S + self.rng.uniform(0.5, 1.5))  # past the lease
            r["proc"].send_signal(signal.SIGCONT)
            r["stopped"] = False
        elif kind == "redis_restart":
            dep.redis.kill()
            time.sleep(self.rng.uniform(0.2, 1.0))
            dep.redis.start()  # same port, no persistence: every key is gone

    def fault_schedule(self):
        kinds = [k for k in FAULT_KINDS if self.unique_at_paykka or k != "redis_restart"]
        # Every kind once, in a seeded order, then seeded draws.
        plan = list(kinds)
        self.rng.shuffle(plan)
        while not self.stop_faults.is_set():
            kind = plan.pop(0) if plan else self.rng.choice(kinds)
            with self.lock:
                self.faults[kind] += 1
            self.active.add(kind)
            self.inject(kind)
            self.active.discard(kind)
            self.stop_faults.wait(self.rng.uniform(0.2, 1.0))

    # --- the run ---------------------------------------------------------------------------

    def first_recurring(self):
        req = pb.CreateCheckoutRequest(
            merchant_id=MERCHANT, trans_id="first-%d-%d" % (self.seed, time.time_ns()),
            payment_type=pb.PAYMENT_TYPE_RECURRING, session_mode=pb.SESSION_MODE_DROP_IN,
            amount=990, currency="USD", return_url="https://shop.example/return")
        req.payment.store_payment_method = True
        req.payment.token_usage = pb.TOKEN_USAGE_SUBSCRIPTION
        req.payment.shopper_reference = "shopper-%d" % self.seed
        session = self.stubs[0].CreateCheckout(req, timeout=10)
        self.dep.sandbox_call("POST", "/sandbox/sessions/%s/pay" % session.session_id,
                              {"outcome": "SUCCESS"})
        return self.stubs[0].GetOrder(pb.GetOrderRequest(
            merchant_id=MERCHANT, session_id=session.session_id), timeout=10).order

    def make_payment(self, first, payments, rng):
        trans_id = "chaos-%d-%d" % (self.seed, len(payments))
        amount = 1000 + rng.randrange(5000)
        if amount % 100 == 51:
            amount += 1  # the sandbox declines amounts ending in 51
        if rng.random() < 0.7:
            req = pb.CreateCheckoutRequest(
                merchant_id=MERCHANT, trans_id=trans_id,
                payment_type=pb.PAYMENT_TYPE_PURCHASE, session_mode=pb.SESSION_MODE_HOSTED,
                amount=amount, currency="USD", return_url="https://shop.example/return")
            payments.append(Payment("checkout", req))
        else:
            req = pb.ChargeRecurringRequest(
                merchant_id=MERCHANT, trans_id=trans_id, amount=amount, currency="USD",
                recurring_agreement_id=first.recurring_agreement_id)
            req.payment.token = first.token
            req.payment.shopper_reference = first.shopper_reference
            payments.append(Payment("charge", req))
        return payments[-1]

    def wait_settled(self, window):
        """Seconds until nothing is unsettled (Redis and every replica's gauge), or None."""
        start = time.time()
        while time.time() - start < window:
            left = self.dep.redis.unsettled_records()
            gauges = [self.dep.metric(i, "payorch_unsettled_records")
                      for i in range(len(self.dep.replicas))]
            if not left and all(g == 0 for g in gauges):
                return time.time() - start
            time.sleep(0.5)
        return None

    def truth(self, payment):
        """PayKKa's object for the trans_id (read through payorch's pass-through queries)."""
        t = payment.request.trans_id
        try:
            if payment.kind == "checkout":
                return self.stubs[0].GetSessionStatus(pb.GetSessionStatusRequest(
                    merchant_id=MERCHANT, trans_id=t), timeout=10).session_id
            return self.stubs[0].GetOrder(pb.GetOrderRequest(
                merchant_id=MERCHANT, trans_id=t), timeout=10).order.order_id
        except grpc.RpcError as err:
            return "none (%s)" % err.code().name

    def run(self):
        workdir = tempfile.mkdtemp(prefix="payorch-chaos-")
        self.dep = Deployment(self.args.bin_dir, workdir, self.args.replicas,
                              self.duplicate_policy)
        try:
            return self._run()
        finally:
            self.dep.stop()
            if not self.args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                log("kept", workdir)

    def _run(self):
        self.dep.start()
        self.channel_stubs()
        first = self.first_recurring()
        payments = []
        log("seed %d: %d s of callers over %d replicas, duplicate policy %s" % (
            self.seed, self.args.duration, len(self.dep.replicas), self.duplicate_policy))
        injector = threading.Thread(target=self.fault_schedule)
        injector.start()
        # The payments' draws use their own generator: the fault schedule's stays the
        # same whatever the callers' pace.
        prng = random.Random(self.seed * 31)
        self.run_callers(lambda: self.make_payment(first, payments, prng), self.args.duration)
        self.stop_faults.set()
        injector.join()
        self.dep.sandbox_call("DELETE", "/sandbox/faults")
        chaos_ops = self.ops
        # The reconciler's window: no caller retries.
        window = LEASE_S + PAYKKA_TIMEOUT_S + 2 + 30
        settle = self.wait_settled(window)
        left = self.dep.redis.unsettled_records()
        # Every caller's last retry, with the faults gone.
        rng = random.Random(self.seed)
        for p in payments:
            for k, answer in enumerate(p.answers):
                if answer[0] != "ok":
                    before = len(p.answers)
                    self.caller(p, rng, 20)
                    p.answers[k] = p.answers.pop(before)
        duplicates, wrong, missing, examples = 0, 0, 0, []
        by_fault = {}  # violations by the fault windows the payment's calls ran in
        for p in payments:
            info = self.dep.sandbox_call(
                "GET", "/sandbox/trans-ids/" + urllib.parse.quote(p.request.trans_id, safe=""))
            objects = info["objects"]
            cause = "+".join(sorted(p.faults_seen)) or "none"
            if objects > 1:
                duplicates += objects - 1
                by_fault["duplicate: " + cause] = by_fault.get("duplicate: " + cause, 0) + 1
                if len(examples) < 10:
                    examples.append("%s (%s): %d objects" % (p.request.trans_id, p.kind, objects))
            if objects == 0:
                missing += 1
            truth = self.truth(p)
            for a in p.answers:
                if a != ("ok", truth):
                    wrong += 1
                    by_fault["wrong: " + cause] = by_fault.get("wrong: " + cause, 0) + 1
                    if len(examples) < 10:
                        examples.append("%s (%s): answered %s, PayKKa holds %s" % (
                            p.request.trans_id, p.kind, a, truth))
        return {
            "seed": self.seed, "payments": len(payments),
            "callers": sum(len(p.answers) for p in payments),
            "operations": self.ops, "operations_under_faults": chaos_ops,
            "operations_by_result": dict(sorted(self.ops_by_result.items())),
            "faults_injected": self.faults, "duplicate_policy": self.duplicate_policy,
            "duplicates": duplicates, "wrong_final_answers": wrong,
            "payments_missing_at_paykka": missing,
            "unsettled_left_after_window": len(left),
            "settled_after_faults_stopped_s": None if settle is None else round(settle, 1),
            "violations_by_fault": dict(sorted(by_fault.items())),
            "examples": examples,
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--gen-dir", default=os.path.join(ROOT, "build", "gen", "python"))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--duration", type=float, default=40,
                    help="seconds of callers under faults, per seed")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--callers", type=int, default=24, help="concurrent caller threads")
    ap.add_argument("--attempts", type=int, default=6, help="tries per caller under faults")
    ap.add_argument("--results", help="write the figures here (JSON)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    payorch_client.load_stubs(args.gen_dir)
    global grpc, pb, pb_grpc
    grpc, pb, pb_grpc = payorch_client.grpc, payorch_client.pb, payorch_client.pb_grpc

    runs = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        started = time.time()
        r = Chaos(args, seed).run()
        r["seconds"] = round(time.time() - started, 1)
        runs.append(r)
        log(json.dumps(r, indent=1))
    total = {
        "runs": len(runs),
        "operations": sum(r["operations"] for r in runs),
        "faults_injected": {k: sum(r["faults_injected"][k] for r in runs) for k in FAULT_KINDS},
        "duplicates": sum(r["duplicates"] for r in runs),
        "wrong_final_answers": sum(r["wrong_final_answers"] for r in runs),
        "payments_missing_at_paykka": sum(r["payments_missing_at_paykka"] for r in runs),
        "unsettled_left_after_window": sum(r["unsettled_left_after_window"] for r in runs),
        "max_settle_after_faults_stopped_s": max(
            (r["settled_after_faults_stopped_s"] for r in runs
             if r["settled_after_faults_stopped_s"] is not None), default=None),
    }
    log("TOTAL", json.dumps(total, indent=1))
    if args.results:
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        with open(args.results, "w") as f:
            json.dump({"total": total, "runs": runs}, f, indent=1)
            f.write("\n")
    ok = (total["duplicates"] == 0 and total["wrong_final_answers"] == 0
          and total["payments_missing_at_paykka"] == 0
          and total["unsettled_left_after_window"] == 0
          and all(r["settled_after_faults_stopped_s"] is not None for r in runs))
    log("invariants", "HOLD" if ok else "VIOLATED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
