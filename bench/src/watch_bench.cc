// payorch-watchbench: many concurrent WatchOrder streams on one payorchd, and
// the time from a payment's webhook to its event on the stream
// (bench/streams.sh).
//
// 1. Creates --streams checkouts (notify_url: --notify_url) on payorchd.
// 2. Opens one WatchOrder stream per session (by session_id) over --channels
//    HTTP/2 connections, gRPC's callback API (no thread per stream), and
//    waits until each has its first message (the unpaid session). Streams
//    are opened at --open_rate per second: each costs payorchd one PayKKa
//    query (RSA-signed both ways), as watchers arriving over time would.
// 3. Pays --payments of them through the sandbox's control API at --rate per
//    second; each stream then gets the SUCCESS event and ends. The latency of
//    one payment is from the pay call's start (the sandbox sends the webhook
//    while answering it) to the SUCCESS message on the stream: an upper
//    bound of webhook -> event delivered.
// Prints one JSON object: streams opened, open time, latency p50/p99/max.
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "payorch/v1/payorch.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "payorchd (plaintext)");
ABSL_FLAG(std::string, sandbox, "", "the sandbox's base URL (control API)");
ABSL_FLAG(std::string, notify_url, "", "webhook URL given to each checkout");
ABSL_FLAG(std::string, merchant_id, "M100001", "merchant");
ABSL_FLAG(int, streams, 10000, "concurrent WatchOrder streams");
ABSL_FLAG(int, channels, 16, "HTTP/2 connections to payorchd");
ABSL_FLAG(double, open_rate, 500,
          "streams opened per second (each costs payorchd a PayKKa query)");
ABSL_FLAG(int, payments, 5000, "payments made while the streams are open");
ABSL_FLAG(double, rate, 500, "payments per second");
ABSL_FLAG(int, threads, 8, "threads creating checkouts and paying");
ABSL_FLAG(absl::Duration, hold, absl::Seconds(10),
          "how long every stream is held open before the payments");

namespace {

namespace v1 = payorch::v1;

struct Stream;

struct Shared {
  absl::Mutex mu;
  int first = 0;  // streams with their first message
  int done = 0;   // streams finished
  int failed = 0;
  int unpaid_success = 0;  // SUCCESS before the pay call was marked (a bug)
  std::vector<double> latency_ms;
};

// One WatchOrder stream.
class Stream : public grpc::ClientReadReactor<v1::WatchOrderResponse> {
 public:
  Stream(Shared* shared, v1::PaymentOrchestrator::Stub* stub,
         const std::string& session)
      : shared_(shared) {
    v1::WatchOrderRequest req;
    req.set_merchant_id(absl::GetFlag(FLAGS_merchant_id));
    req.set_session_id(session);
    stub->async()->WatchOrder(&context_, &req, this);
    StartRead(&message_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (message_.has_order() &&
        message_.order().status() == v1::ORDER_STATUS_SUCCESS) {
      absl::Time now = absl::Now();
      absl::MutexLock lock(&shared_->mu);
      if (paid_at_ != absl::InfinitePast()) {
        shared_->latency_ms.push_back(
            absl::ToDoubleMilliseconds(now - paid_at_));
      } else {
        ++shared_->unpaid_success;
      }
    } else if (!got_first_) {
      got_first_ = true;
      absl::MutexLock lock(&shared_->mu);
      ++shared_->first;
    }
    StartRead(&message_);
  }
  void OnDone(const grpc::Status& s) override {
    absl::MutexLock lock(&shared_->mu);
    ++shared_->done;
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
      ++shared_->failed;
      if (shared_->failed <= 3) {
        std::fprintf(stderr, "stream failed: %d %s\n", s.error_code(),
                     s.error_message().c_str());
      }
    }
  }
  void Paid(absl::Time at) {
    absl::MutexLock lock(&shared_->mu);
    paid_at_ = at;
  }
  void Cancel() { context_.TryCancel(); }

 private:
  Shared* shared_;
  grpc::ClientContext context_;
  v1::WatchOrderResponse message_;
  bool got_first_ = false;
  absl::Time paid_at_ = absl::InfinitePast();  // guarded by shared_->mu
};

std::vector<std::unique_ptr<v1::PaymentOrchestrator::Stub>> Stubs() {
  std::vector<std::unique_ptr<v1::PaymentOrchestrator::Stub>> stubs;
  for (int i = 0; i < absl::GetFlag(FLAGS_channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("payorch.bench.channel", i);  // one connection each
    stubs.push_back(v1::PaymentOrchestrator::NewStub(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// Runs fn(i) for i in [0, n) on --threads threads.
template <typename Fn>
void Parallel(int n, Fn fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < absl::GetFlag(FLAGS_threads); ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

std::vector<std::string> CreateSessions(v1::PaymentOrchestrator::Stub* stub,
                                        int n) {
  std::vector<std::string> sessions(n);
  const std::string run = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  Parallel(n, [&](int i) {
    v1::CreateCheckoutRequest req;
    req.set_merchant_id(absl::GetFlag(FLAGS_merchant_id));
    req.set_trans_id(absl::StrCat("wb-", run, "-", i));
    req.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
    req.set_session_mode(v1::SESSION_MODE_DROP_IN);
    req.set_amount(1999);
    req.set_currency("USD");
    req.set_return_url("https://shop.example/return");
    req.set_notify_url(absl::GetFlag(FLAGS_notify_url));
    for (int attempt = 0; attempt < 5 && sessions[i].empty(); ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      v1::CreateCheckoutResponse resp;
      if (stub->CreateCheckout(&ctx, req, &resp).ok()) {
        sessions[i] = resp.session_id();
      }
    }
  });
  return sessions;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

// POST /sandbox/sessions/<id>/pay; true on HTTP 200.
bool Pay(CURL* curl, const std::string& session) {
  std::string url = absl::StrCat(absl::GetFlag(FLAGS_sandbox),
                                 "/sandbox/sessions/", session, "/pay");
  static const char kBody[] =
      R"({"outcome":"SUCCESS","card_no":"4242424242424242"})";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, kBody);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  long code = 0;
  if (curl_easy_perform(curl) != CURLE_OK) return false;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  return code == 200;
}

// Pays the first `n` sessions at --rate per second, each on its stream.
int PayAtRate(const std::vector<std::string>& sessions,
              const std::vector<Stream*>& streams, int n) {
  const int threads = absl::GetFlag(FLAGS_threads);
  const absl::Duration gap = absl::Seconds(1) / absl::GetFlag(FLAGS_rate);
  const absl::Time start = absl::Now();
  std::atomic<int> next{0}, ok{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      CURL* curl = curl_easy_init();
      curl_slist* headers =
          curl_slist_append(nullptr, "content-type: application/json");
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      for (int i = next++; i < n; i = next++) {
        absl::Time due = start + gap * i;
        if (absl::Now() < due) absl::SleepFor(due - absl::Now());
        if (sessions[i].empty()) continue;
        streams[i]->Paid(absl::Now());
        if (Pay(curl, sessions[i])) ++ok;
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(curl);
    });
  }
  for (auto& w : workers) w.join();
  return ok.load();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// Waits until `cond(shared)` holds or `timeout` passes.
template <typename Cond>
bool WaitFor(Shared* shared, absl::Duration timeout, Cond cond) {
  const absl::Time give_up = absl::Now() + timeout;
  for (;;) {
    {
      absl::MutexLock lock(&shared->mu);
      if (cond(*shared)) return true;
    }
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto stubs = Stubs();
  const int n = absl::GetFlag(FLAGS_streams);
  const absl::Time t0 = absl::Now();
  std::vector<std::string> sessions = CreateSessions(stubs[0].get(), n);
  const absl::Duration create_time = absl::Now() - t0;
  Shared shared;
  std::vector<Stream*> streams;
  const absl::Time t1 = absl::Now();
  const absl::Duration open_gap =
      absl::Seconds(1) / absl::GetFlag(FLAGS_open_rate);
  for (int i = 0; i < n; ++i) {
    absl::Time due = t1 + open_gap * i;
    if (absl::Now() < due) absl::SleepFor(due - absl::Now());
    streams.push_back(
        new Stream(&shared, stubs[i % stubs.size()].get(), sessions[i]));
  }
  bool all_open = WaitFor(&shared, absl::Minutes(5), [n](const Shared& s) {
    return s.first + s.failed >= n;
  });
  const absl::Duration open_time = absl::Now() - t1;
  int opened = 0;
  {
    absl::MutexLock lock(&shared.mu);
    opened = shared.first;
  }
  std::fprintf(stderr, "watchbench: %d/%d streams open in %s; holding %s\n",
               opened, n, absl::FormatDuration(open_time).c_str(),
               absl::FormatDuration(absl::GetFlag(FLAGS_hold)).c_str());
  // The script samples payorchd's threads and RSS now.
  std::printf("{\"phase\":\"holding\"}\n");
  std::fflush(stdout);
  absl::SleepFor(absl::GetFlag(FLAGS_hold));
  const int payments = std::min(n, absl::GetFlag(FLAGS_payments));
  const absl::Time t2 = absl::Now();
  const int paid = PayAtRate(sessions, streams, payments);
  const absl::Duration pay_time = absl::Now() - t2;
  WaitFor(&shared, absl::Seconds(30), [paid](const Shared& s) {
    return static_cast<int>(s.latency_ms.size()) >= paid;
  });
  for (Stream* s : streams) s->Cancel();
  WaitFor(&shared, absl::Seconds(30),
          [n](const Shared& s) { return s.done >= n; });
  absl::MutexLock lock(&shared.mu);
  std::printf(
      "{\"phase\":\"done\",\"streams\":%d,\"opened\":%d,\"all_open\":%s,"
      "\"create_s\":%.1f,\"open_s\":%.1f,\"payments\":%d,\"paid\":%d,"
      "\"pay_s\":%.1f,\"delivered\":%zu,\"failed\":%d,\"p50_ms\":%.1f,"
      "\"p99_ms\":%.1f,\"max_ms\":%.1f,\"success_before_pay\":%d}\n",
      n, opened, all_open ? "true" : "false",
      absl::ToDoubleSeconds(create_time), absl::ToDoubleSeconds(open_time),
      payments, paid, absl::ToDoubleSeconds(pay_time), shared.latency_ms.size(),
      shared.failed, Percentile(shared.latency_ms, 0.5),
      Percentile(shared.latency_ms, 0.99), Percentile(shared.latency_ms, 1.0),
      shared.unpaid_success);
  return 0;
}
