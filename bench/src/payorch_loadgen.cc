// payorch-loadgen: a gRPC load generator for payorch.v1 (callback API).
//
// Closed loop: --concurrency=N calls outstanding; each completion issues the
// next. Open loop: --rate=R arrivals per second on a fixed schedule; latency
// is measured from each call's scheduled time, so queueing anywhere (client,
// network, server) is charged to the system under test (no coordinated
// omission). Both stop issuing at --count calls or after --duration, then
// wait at most --deadline for the stragglers. Loopback targets only.
//
// Calls are spread round-robin over --channels channels, each with its own
// subchannel pool (and so its own HTTP/2 connection).

#include <grpc/grpc_security.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/src/requests.h"
#include "bench/src/stats.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "payorch/v1/payorch.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "payorchd gRPC address (loopback only)");
ABSL_FLAG(std::string, op, "create", "create | get_order | charge");
ABSL_FLAG(std::string, mode, "closed",
          "closed (N outstanding) | open (fixed arrival rate)");
ABSL_FLAG(int, concurrency, 16, "closed loop: calls outstanding");
ABSL_FLAG(double, rate, 100, "open loop: calls per second");
ABSL_FLAG(int64_t, count, 100000, "at most this many calls (warm-up included)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "stop issuing after this long");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "calls scheduled in this first period are not measured");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(30),
          "per-call gRPC deadline");
ABSL_FLAG(int, channels, 8, "channels (HTTP/2 connections)");
ABSL_FLAG(
    int, max_outstanding, 20000,
    "open loop: calls beyond this many outstanding are dropped (counted)");
ABSL_FLAG(std::string, prefix, "",
          "trans_id prefix (default: bench-<pid>-<time>)");
ABSL_FLAG(
    int64_t, id_space, 0,
    "0: a fresh trans_id per call; K: cycle over <prefix>-0..K-1 (replay)");
ABSL_FLAG(std::string, merchant_id, "M100001", "merchant");
ABSL_FLAG(int64_t, amount, 1999, "amount, minor units");
ABSL_FLAG(bool, recurring, false,
          "create: first payment of a recurring series");
ABSL_FLAG(std::string, shopper_reference, "bench-shopper-1",
          "recurring shopper reference");
ABSL_FLAG(std::string, token, "", "charge: stored card token");
ABSL_FLAG(std::string, agreement, "", "charge: recurring_agreement_id");
ABSL_FLAG(std::string, label, "", "name of this run in the output");
ABSL_FLAG(std::string, out, "", "write the JSON summary here");
ABSL_FLAG(std::string, cpu_pids, "",
          "name:pid,...: report each process's CPU microseconds per request "
          "over the measured window (from /proc/<pid>/stat)");
ABSL_FLAG(std::string, ca, "",
          "mTLS: PEM CA that signs payorchd's certificate (empty: plaintext)");
ABSL_FLAG(std::string, cert, "", "mTLS: client certificate chain (PEM)");
ABSL_FLAG(std::string, key, "", "mTLS: client private key (PEM)");
ABSL_FLAG(std::string, dump, "",
          "create: append 'trans_id session_id' of each OK call here");

namespace payorch::bench {
namespace {

using Stub = v1::PaymentOrchestrator::Stub;

// "CODE" or "CODE/REASON" from the google.rpc.Status in the trailers.
std::string OutcomeKey(const grpc::Status& status) {
  if (status.ok()) return "OK";
  std::string key = absl::StatusCodeToString(
      static_cast<absl::StatusCode>(status.error_code()));
  google::rpc::Status details;
  if (!status.error_details().empty() &&
      details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::ErrorInfo info;
      if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) {
        absl::StrAppend(&key, "/", info.reason());
        break;
      }
    }
  }
  return key;
}

struct CallBase {
  virtual ~CallBase() = default;
  virtual void Start(Stub* stub, std::function<void(grpc::Status)> done) = 0;
  virtual std::string DumpLine() const { return ""; }
  grpc::ClientContext ctx;
  absl::Time intended;
  bool measured = true;
};

struct CreateCall : CallBase {
  v1::CreateCheckoutRequest req;
  v1::CreateCheckoutResponse resp;
  void Start(Stub* stub, std::function<void(grpc::Status)> done) override {
    stub->async()->CreateCheckout(&ctx, &req, &resp, std::move(done));
  }
  std::string DumpLine() const override {
    return absl::StrCat(req.trans_id(), " ", resp.session_id(), "\n");
  }
};

struct GetOrderCall : CallBase {
  v1::GetOrderRequest req;
  v1::GetOrderResponse resp;
  void Start(Stub* stub, std::function<void(grpc::Status)> done) override {
    stub->async()->GetOrder(&ctx, &req, &resp, std::move(done));
  }
};

struct ChargeCall : CallBase {
  v1::ChargeRecurringRequest req;
  v1::ChargeRecurringResponse resp;
  void Start(Stub* stub, std::function<void(grpc::Status)> done) override {
    stub->async()->ChargeRecurring(&ctx, &req, &resp, std::move(done));
  }
  std::string DumpLine() const override {
    return absl::StrCat(req.trans_id(), " ", resp.order().order_id(), " ",
                        resp.order().status_text(), "\n");
  }
};

class LoadGen {
 public:
  LoadGen(RunSpec spec, RequestOptions opts, std::string prefix,
          int64_t id_space)
      : spec_(std::move(spec)),
        opts_(std::move(opts)),
        prefix_(std::move(prefix)),
        id_space_(id_space) {}

  bool Connect(const std::string& target, int channels,
               const std::shared_ptr<grpc::ChannelCredentials>& creds) {
    // mTLS: one TLS session cache for every channel, so reconnects resume
    // the session instead of a full handshake.
    grpc_ssl_session_cache* cache = grpc_ssl_session_cache_create_lru(64);
    grpc_arg cache_arg = grpc_ssl_session_cache_create_channel_arg(cache);
    for (int i = 0; i < channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("payorch.bench.channel_index",
                  i);  // distinct args: no sharing
      args.SetPointerWithVtable(cache_arg.key, cache_arg.value.pointer.p,
                                cache_arg.value.pointer.vtable);
      auto channel = grpc::CreateCustomChannel(target, creds, args);
      if (!channel->WaitForConnected(
              absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
        std::fprintf(stderr, "payorch-loadgen: cannot connect to %s\n",
                     target.c_str());
        return false;
      }
      stubs_.push_back(v1::PaymentOrchestrator::NewStub(channel));
    }
    grpc_ssl_session_cache_destroy(cache);  // the channels hold references
    return true;
  }

  void OpenDump(const std::string& path) {
    if (!path.empty()) dump_.open(path, std::ios::app);
  }

  nlohmann::json Run(absl::Duration deadline, int max_outstanding,
                     const std::string& cpu_pids, std::string* table) {
    deadline_ = deadline;
    start_ = absl::Now();
    measure_start_ = start_ + spec_.warmup;
    issue_end_ = start_ + spec_.duration;
    std::vector<std::pair<std::string, int>> pids = ParseCpuPids(cpu_pids);
    pids.emplace_back("loadgen", 0);
    CpuWindow cpu(std::move(pids), &rec_, measure_start_, issue_end_);
    if (spec_.mode == "closed") {
      for (int i = 0; i < spec_.concurrency; ++i) IssueNextClosed();
    } else {
      for (int64_t i = 0; i < spec_.count; ++i) {
        absl::Time t = IntendedTime(start_, spec_.rate, i);
        if (t >= issue_end_) break;
        absl::Duration wait = t - absl::Now();
        if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
        if (outstanding_.load() >= max_outstanding) {
          rec_.AddDropped();
          continue;
        }
        issued_.fetch_add(1);
        Issue(i, t);
      }
    }
    // Wait for the stragglers; the per-call deadline bounds this.
    absl::Time give_up =
        std::max(issue_end_, absl::Now()) + deadline + absl::Seconds(5);
    {
      absl::MutexLock lock(&mu_);
      auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return outstanding_.load() == 0 &&
               (spec_.mode == "open" || closed_done_);
      };
      while (!drained() && absl::Now() < give_up) {
        cv_.WaitWithDeadline(&mu_, give_up);
      }
    }
    cpu.Wait();
    nlohmann::json j = rec_.Summarize(spec_, measure_start_, issue_end_,
                                      issued_.load(), table);
    j["cpu"] = cpu.Json();
    j["max_outstanding_observed"] = max_outstanding_.load();
    j["still_outstanding_at_exit"] = outstanding_.load();
    j["channels"] = static_cast<int>(stubs_.size());
    return j;
  }

 private:
  void IssueNextClosed() {
    int64_t i = issued_.fetch_add(1);
    if (i >= spec_.count || absl::Now() >= issue_end_) {
      issued_.fetch_sub(1);
      absl::MutexLock lock(&mu_);
      closed_done_ = true;
      cv_.SignalAll();
      return;
    }
    Issue(i, absl::Now());
  }

  std::unique_ptr<CallBase> MakeCall(int64_t i) {
    std::string id = TransId(prefix_, i, id_space_);
    if (spec_.op == "create") {
      auto c = std::make_unique<CreateCall>();
      c->req = MakeCreateCheckout(opts_, id);
      return c;
    }
    if (spec_.op == "get_order") {
      auto c = std::make_unique<GetOrderCall>();
      c->req = MakeGetOrderByTransId(opts_, id);
      return c;
    }
    auto c = std::make_unique<ChargeCall>();
    c->req = MakeChargeRecurring(opts_, id);
    return c;
  }

  void Issue(int64_t i, absl::Time intended) {
    CallBase* call = MakeCall(i).release();
    call->intended = intended;
    call->measured = intended >= measure_start_;
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
    int64_t now_out = outstanding_.fetch_add(1) + 1;
    int64_t prev = max_outstanding_.load();
    while (now_out > prev &&
           !max_outstanding_.compare_exchange_weak(prev, now_out)) {
    }
    Stub* stub = stubs_[static_cast<size_t>(i) % stubs_.size()].get();
    call->Start(stub,
                [this, call](grpc::Status status) { Done(call, status); });
  }

  void Done(CallBase* call, const grpc::Status& status) {
    absl::Time now = absl::Now();
    rec_.Add(now - call->intended, OutcomeKey(status), status.ok(),
             call->measured, now);
    if (status.ok() && dump_.is_open()) {
      std::string line = call->DumpLine();
      absl::MutexLock lock(&dump_mu_);
      dump_ << line;
      dump_.flush();
    }
    delete call;
    // Decrement first: the closed loop's replacement is then counted as a
    // new outstanding call (the drain check also needs closed_done_).
    if (outstanding_.fetch_sub(1) == 1) {
      absl::MutexLock lock(&mu_);
      cv_.SignalAll();
    }
    if (spec_.mode == "closed") IssueNextClosed();
  }

  RunSpec spec_;
  RequestOptions opts_;
  std::string prefix_;
  int64_t id_space_;
  std::vector<std::unique_ptr<Stub>> stubs_;
  Recorder rec_;
  absl::Duration deadline_;
  absl::Time start_, measure_start_, issue_end_;
  std::atomic<int64_t> issued_{0};
  std::atomic<int64_t> outstanding_{0};
  std::atomic<int64_t> max_outstanding_{0};
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool closed_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex dump_mu_;
  std::ofstream dump_;
};

bool IsLoopback(const std::string& target) {
  return absl::StartsWith(target, "127.") ||
         absl::StartsWith(target, "localhost:") ||
         absl::StartsWith(target, "[::1]:") ||
         absl::StartsWith(target, "ipv4:127.");
}

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Plaintext, or mTLS when --ca is set (client certificate from --cert/--key).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials() {
  if (absl::GetFlag(FLAGS_ca).empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [flag, field] : {std::pair{&FLAGS_ca, &ssl.pem_root_certs},
                             std::pair{&FLAGS_cert, &ssl.pem_cert_chain},
                             std::pair{&FLAGS_key, &ssl.pem_private_key}}) {
    absl::StatusOr<std::string> pem = ReadPem(absl::GetFlag(*flag));
    if (!pem.ok()) return pem.status();
    *field = *std::move(pem);
  }
  return grpc::SslCredentials(ssl);
}

int Main() {
  std::string target = absl::GetFlag(FLAGS_target);
  if (!IsLoopback(target)) {
    std::fprintf(stderr, "payorch-loadgen: refusing non-loopback target %s\n",
                 target.c_str());
    return 2;
  }
  RunSpec spec;
  spec.tool = "payorch-loadgen";
  spec.label = absl::GetFlag(FLAGS_label);
  spec.op = absl::GetFlag(FLAGS_op);
  spec.mode = absl::GetFlag(FLAGS_mode);
  spec.concurrency = absl::GetFlag(FLAGS_concurrency);
  spec.rate = absl::GetFlag(FLAGS_rate);
  spec.count = absl::GetFlag(FLAGS_count);
  spec.duration = absl::GetFlag(FLAGS_duration);
  spec.warmup = absl::GetFlag(FLAGS_warmup);
  if (spec.op != "create" && spec.op != "get_order" && spec.op != "charge") {
    std::fprintf(stderr, "payorch-loadgen: unknown --op=%s\n", spec.op.c_str());
    return 2;
  }
  if ((spec.mode != "closed" && spec.mode != "open") || spec.count <= 0 ||
      (spec.mode == "closed" && spec.concurrency <= 0) ||
      (spec.mode == "open" && spec.rate <= 0)) {
    std::fprintf(stderr,
                 "payorch-loadgen: bad --mode/--concurrency/--rate/--count\n");
    return 2;
  }
  if (spec.mode == "open") spec.concurrency = 0;
  RequestOptions opts;
  opts.merchant_id = absl::GetFlag(FLAGS_merchant_id);
  opts.amount = absl::GetFlag(FLAGS_amount);
  opts.recurring = absl::GetFlag(FLAGS_recurring);
  opts.shopper_reference = absl::GetFlag(FLAGS_shopper_reference);
  opts.token = absl::GetFlag(FLAGS_token);
  opts.recurring_agreement_id = absl::GetFlag(FLAGS_agreement);
  std::string prefix = absl::GetFlag(FLAGS_prefix);
  if (prefix.empty()) {
    prefix =
        absl::StrCat("bench-", getpid(), "-", absl::ToUnixMillis(absl::Now()));
  }
  LoadGen gen(spec, opts, prefix, absl::GetFlag(FLAGS_id_space));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      Credentials();
  if (!creds.ok()) {
    std::fprintf(stderr, "payorch-loadgen: %s\n",
                 creds.status().ToString().c_str());
    return 2;
  }
  if (!gen.Connect(target, std::max(1, absl::GetFlag(FLAGS_channels)), *creds))
    return 1;
  gen.OpenDump(absl::GetFlag(FLAGS_dump));
  std::string table;
  nlohmann::json j = gen.Run(absl::GetFlag(FLAGS_deadline),
                             absl::GetFlag(FLAGS_max_outstanding),
                             absl::GetFlag(FLAGS_cpu_pids), &table);
  j["target"] = target;
  j["mtls"] = !absl::GetFlag(FLAGS_ca).empty();
  j["trans_id_prefix"] = prefix;
  std::fputs(table.c_str(), stdout);
  std::fflush(stdout);
  if (!WriteJsonFile(absl::GetFlag(FLAGS_out), j)) {
    std::fprintf(stderr, "payorch-loadgen: cannot write %s\n",
                 absl::GetFlag(FLAGS_out).c_str());
    return 1;
  }
  // Calls still outstanding past their deadline would hang a normal exit.
  if (j["still_outstanding_at_exit"].get<int64_t>() > 0) std::_Exit(0);
  return 0;
}

}  // namespace
}  // namespace payorch::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "payorch-loadgen: gRPC load generator for payorch (see bench/README.md)");
  absl::ParseCommandLine(argc, argv);
  return payorch::bench::Main();
}
