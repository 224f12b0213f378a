// paykka-direct: the baseline. What a caller would do without payorch: sign
// PayKKa v3 requests itself and send them straight to PayKKa (here the
// sandbox) over libcurl multi with keep-alive, then check the response's
// signature and parse it. Same request bodies as payorch sends (the
// adapter's mapping), the same signer and verifier (adapters/paykka/signer.h),
// the same concurrency and the same closed/open-loop accounting
// (bench/src/stats.h) as payorch-loadgen.
//
// --threads worker threads each run their own curl multi handle and sign on
// their own thread, like a direct caller using all cores.

#include <curl/curl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/paykka/http_transport.h"
#include "adapters/paykka/mapping.h"
#include "adapters/paykka/merchant_config.h"
#include "adapters/paykka/signer.h"
#include "bench/src/requests.h"
#include "bench/src/stats.h"

ABSL_FLAG(std::string, merchants_config, "",
          "payorch's merchants JSON (same keys, same base_url)");
ABSL_FLAG(std::string, merchant_id, "M100001", "merchant");
ABSL_FLAG(std::string, op, "create",
          "create (Create Session) | query (Query Transaction by trans_id) | "
          "charge (MIT Initiate Transaction)");
ABSL_FLAG(std::string, mode, "closed", "closed | open");
ABSL_FLAG(int, concurrency, 16,
          "closed loop: requests outstanding (over all threads)");
ABSL_FLAG(double, rate, 100, "open loop: requests per second");
ABSL_FLAG(int64_t, count, 100000,
          "at most this many requests (warm-up included)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "stop issuing after this long");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "requests scheduled in this first period are not measured");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "per-request timeout");
ABSL_FLAG(int, threads, 2,
          "worker threads (each: one curl multi, signs inline)");
ABSL_FLAG(
    int, max_outstanding, 20000,
    "open loop: requests beyond this many outstanding are dropped (counted)");
ABSL_FLAG(bool, verify, true,
          "verify response signatures when the merchant config says so (as "
          "payorch does)");
ABSL_FLAG(std::string, prefix, "",
          "trans_id prefix (default: direct-<pid>-<time>)");
ABSL_FLAG(int64_t, id_space, 0,
          "0: a fresh trans_id per request; K: cycle over <prefix>-0..K-1");
ABSL_FLAG(int64_t, amount, 1999, "amount, minor units");
ABSL_FLAG(std::string, shopper_reference, "bench-shopper-1",
          "recurring shopper reference");
ABSL_FLAG(std::string, token, "", "charge: stored card token");
ABSL_FLAG(std::string, agreement, "", "charge: recurring_agreement_id");
ABSL_FLAG(std::string, ca_file, "",
          "PEM CA bundle trusted for an https base_url (the sandbox's)");
ABSL_FLAG(std::string, cpu_pids, "",
          "name:pid,...: also report these processes' CPU microseconds per "
          "request over the measured window (this client's own: 'direct')");
ABSL_FLAG(std::string, label, "", "name of this run in the output");
ABSL_FLAG(std::string, out, "", "write the JSON summary here");

namespace payorch::bench {
namespace {

using paykka::HttpResponse;
using paykka::MerchantConfig;

struct Shared {
  RunSpec spec;
  RequestOptions opts;
  const MerchantConfig* merchant = nullptr;
  std::string prefix;
  int64_t id_space = 0;
  absl::Duration timeout;
  std::string ca_file;
  int max_outstanding = 0;
  bool verify = true;
  absl::Time start, measure_start, issue_end;
  std::atomic<int64_t> next{0};  // closed loop: next request index
  std::atomic<int64_t> issued{0};
  std::atomic<int64_t> outstanding{0};
  std::atomic<int64_t> new_connections{0};  // keep-alive check
  Recorder rec;
};

struct Request {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  HttpResponse response;
  absl::Time intended;
  bool measured = true;
  v1::CreateCheckoutRequest create;  // kept for response parsing
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Request*>(user)->response.body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  absl::string_view line(data, size * n);
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    absl::string_view value =
        absl::StripAsciiWhitespace(line.substr(colon + 1));
    static_cast<Request*>(user)->response.headers[name] = std::string(value);
  }
  return size * n;
}

class Worker {
 public:
  Worker(Shared* s, int index, int threads)
      : s_(s), index_(index), threads_(threads) {
    multi_ = curl_multi_init();
    timer_fd_ = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->spec.mode == "closed") {
      my_concurrency_ = s->spec.concurrency / threads +
                        (index < s->spec.concurrency % threads);
    }
    long cache = s->spec.mode == "closed" ? std::max(my_concurrency_, 4) : 4096;
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, cache);
  }
  ~Worker() {
    for (CURL* e : free_) curl_easy_cleanup(e);
    curl_multi_cleanup(multi_);
    close(timer_fd_);
  }

  void Run() {
    const bool closed = s_->spec.mode == "closed";
    int64_t slot =
        index_;  // open loop: this worker's slots are index, index+T, ...
    bool issuing = true;
    absl::Time give_up = s_->issue_end + s_->timeout + absl::Seconds(5);
    while (true) {
      absl::Time now = absl::Now();
      if (issuing) {
        if (closed) {
          while (mine_ < my_concurrency_) {
            if (now >= s_->issue_end) {
              issuing = false;
              break;
            }
            int64_t i = s_->next.fetch_add(1);
            if (i >= s_->spec.count) {
              issuing = false;
              break;
            }
            Issue(i, now);
            now = absl::Now();
          }
        } else {
          // A few at a time, then send and harvest: signing a whole backlog
          // before sending any of it would turn a hiccup into a collapse.
          for (int burst = 0; burst < 4; ++burst) {
            absl::Time t = IntendedTime(s_->start, s_->spec.rate, slot);
            if (slot >= s_->spec.count || t >= s_->issue_end) {
              issuing = false;
              break;
            }
            if (t > now) break;
            if (s_->outstanding.load() >= s_->max_outstanding) {
              s_->rec.AddDropped();
            } else {
              Issue(slot, t);
            }
            slot += threads_;
            now = absl::Now();
          }
        }
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      Harvest();
      if (!issuing && mine_ == 0) break;
      if (absl::Now() > give_up) break;
      int timeout_ms = 50;
      curl_waitfd* extra = nullptr;
      curl_waitfd timer{};
      if (!closed && issuing) {
        // Wake exactly at the next slot (a timerfd with ns resolution, not
        // curl's ms timeout and not a busy loop that would steal the CPU
        // from the sandbox on a 2-core machine).
        absl::Time next = IntendedTime(s_->start, s_->spec.rate, slot);
        if (next <= absl::Now()) continue;
        timespec ts = absl::ToTimespec(next);
        itimerspec spec{};
        spec.it_value = ts;
        timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
        timer.fd = timer_fd_;
        timer.events = CURL_WAIT_POLLIN;
        extra = &timer;
        timeout_ms = 100;
      } else if (closed && issuing && mine_ < my_concurrency_) {
        timeout_ms = 0;
      }
      curl_multi_poll(multi_, extra, extra ? 1 : 0, timeout_ms, nullptr);
      if (extra != nullptr) {
        uint64_t expirations;
        (void)!read(timer_fd_, &expirations, sizeof expirations);
      }
    }
  }

 private:
  void Issue(int64_t i, absl::Time intended) {
    auto* r = new Request;
    r->intended = intended;
    r->measured = intended >= s_->measure_start;
    std::string id = TransId(s_->prefix, i, s_->id_space);
    const MerchantConfig& m = *s_->merchant;
    absl::string_view path;
    const std::string& op = s_->spec.op;
    if (op == "create") {
      r->create = MakeCreateCheckout(s_->opts, id);
      r->body = paykka::CreateSessionBody(m.merchant_id, r->create);
      path = paykka::kCreateSessionPath;
    } else if (op == "query") {
      paykka::OrderLookup lookup;
      lookup.kind = paykka::OrderLookup::Kind::kTransId;
      lookup.value = id;
      r->body = paykka::QueryTransactionBody(m.merchant_id, lookup);
      path = paykka::kQueryTransactionPath;
    } else {
      r->body = paykka::InitiateRecurringBody(
          m.merchant_id, MakeChargeRecurring(s_->opts, id));
      path = paykka::kInitiateTransactionPath;
    }
    auto signed_headers =
        paykka::SignPaykkaRequest(m, path, r->body, absl::Now());
    if (!signed_headers.ok()) {
      s_->rec.Add(absl::Now() - intended, "SIGN_FAILED", false, r->measured,
                  absl::Now());
      delete r;
      return;
    }
    r->headers = curl_slist_append(nullptr, "Content-Type: application/json");
    for (const auto& [k, v] : *signed_headers) {
      r->headers =
          curl_slist_append(r->headers, absl::StrCat(k, ": ", v).c_str());
    }
    url_ = absl::StrCat(m.base_url, path);
    CURL* e;
    if (free_.empty()) {
      e = curl_easy_init();
    } else {
      e = free_.back();
      free_.pop_back();
    }
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(s_->timeout)));
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (!s_->ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, s_->ca_file.c_str());
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(r->body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data());
    curl_multi_add_handle(multi_, e);
    ++mine_;
    s_->issued.fetch_add(1);
    s_->outstanding.fetch_add(1);
  }

  void Harvest() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      Request* r = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &r);
      CURLcode result = msg->data.result;
      long connects = 0;
      curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
      s_->new_connections.fetch_add(connects);
      curl_multi_remove_handle(multi_, e);
      free_.push_back(e);
      std::string outcome;
      bool ok = false;
      if (result != CURLE_OK) {
        outcome = absl::StrCat("CURL_", curl_easy_strerror(result));
      } else {
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        r->response.status = static_cast<int>(code);
        outcome = Classify(*r, &ok);
      }
      absl::Time now = absl::Now();
      s_->rec.Add(now - r->intended, outcome, ok, r->measured, now);
      curl_slist_free_all(r->headers);
      delete r;
      --mine_;
      s_->outstanding.fetch_sub(1);
    }
  }

  // What a careful direct caller does with the answer: check the signature,
  // parse the envelope and map `data`.
  std::string Classify(const Request& r, bool* ok) {
    if (s_->verify) {
      absl::Status v = paykka::VerifyPaykkaResponse(*s_->merchant, r.response);
      if (!v.ok()) return "BAD_SIGNATURE";
    }
    nlohmann::json body =
        nlohmann::json::parse(r.response.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return absl::StrCat("HTTP_", r.response.status, "/BAD_JSON");
    std::string ret_code = body.value("ret_code", std::string("?"));
    std::string key = absl::StrCat("HTTP_", r.response.status, "/", ret_code);
    if (r.response.status != 200 || ret_code != "000000") return key;
    nlohmann::json data = paykka::EffectiveData(body);
    if (s_->spec.op == "create") {
      auto parsed =
          paykka::ParseCreateSessionData(data, *s_->merchant, r.create);
      if (!parsed.ok()) return absl::StrCat(key, "/UNPARSABLE");
    } else {
      auto parsed = paykka::ParseOrderData(data);
      if (!parsed.ok()) return absl::StrCat(key, "/UNPARSABLE");
      key = absl::StrCat(key, "/", parsed->status_text());
    }
    *ok = true;
    return key;
  }

  Shared* s_;
  int index_;
  int threads_;
  CURLM* multi_;
  int timer_fd_ = -1;
  int my_concurrency_ = 0;
  int mine_ = 0;  // outstanding on this worker
  std::vector<CURL*> free_;
  std::string url_;
};

// The run's shape from the flags; false (after a message) when invalid.
bool FillSpec(Shared* s) {
  s->spec.tool = "paykka-direct";
  s->spec.label = absl::GetFlag(FLAGS_label);
  s->spec.op = absl::GetFlag(FLAGS_op);
  s->spec.mode = absl::GetFlag(FLAGS_mode);
  s->spec.concurrency = absl::GetFlag(FLAGS_concurrency);
  s->spec.rate = absl::GetFlag(FLAGS_rate);
  s->spec.count = absl::GetFlag(FLAGS_count);
  s->spec.duration = absl::GetFlag(FLAGS_duration);
  s->spec.warmup = absl::GetFlag(FLAGS_warmup);
  if (s->spec.op != "create" && s->spec.op != "query" &&
      s->spec.op != "charge") {
    std::fprintf(stderr, "paykka-direct: unknown --op\n");
    return false;
  }
  if ((s->spec.mode != "closed" && s->spec.mode != "open") ||
      s->spec.count <= 0 ||
      (s->spec.mode == "closed" && s->spec.concurrency <= 0) ||
      (s->spec.mode == "open" && s->spec.rate <= 0)) {
    std::fprintf(stderr,
                 "paykka-direct: bad --mode/--concurrency/--rate/--count\n");
    return false;
  }
  if (s->spec.mode == "open") s->spec.concurrency = 0;
  s->id_space = absl::GetFlag(FLAGS_id_space);
  s->timeout = absl::GetFlag(FLAGS_timeout);
  s->max_outstanding = absl::GetFlag(FLAGS_max_outstanding);
  s->verify = absl::GetFlag(FLAGS_verify);
  s->ca_file = absl::GetFlag(FLAGS_ca_file);
  return true;
}

int Main() {
  auto merchants =
      paykka::LoadMerchantConfigs(absl::GetFlag(FLAGS_merchants_config));
  if (!merchants.ok()) {
    std::fprintf(stderr, "paykka-direct: %s\n",
                 merchants.status().ToString().c_str());
    return 2;
  }
  const MerchantConfig* merchant = nullptr;
  for (const auto& m : *merchants) {
    if (m.merchant_id == absl::GetFlag(FLAGS_merchant_id)) merchant = &m;
  }
  if (merchant == nullptr) {
    std::fprintf(stderr, "paykka-direct: merchant %s not in the config\n",
                 absl::GetFlag(FLAGS_merchant_id).c_str());
    return 2;
  }
  if (!absl::StartsWith(merchant->base_url, "http://127.") &&
      !absl::StartsWith(merchant->base_url, "https://127.") &&
      !absl::StartsWith(merchant->base_url, "http://localhost")) {
    std::fprintf(stderr, "paykka-direct: refusing non-loopback base_url %s\n",
                 merchant->base_url.c_str());
    return 2;
  }
  auto s = std::make_unique<Shared>();
  if (!FillSpec(s.get())) return 2;
  s->opts.merchant_id = merchant->merchant_id;
  s->opts.amount = absl::GetFlag(FLAGS_amount);
  s->opts.shopper_reference = absl::GetFlag(FLAGS_shopper_reference);
  s->opts.token = absl::GetFlag(FLAGS_token);
  s->opts.recurring_agreement_id = absl::GetFlag(FLAGS_agreement);
  s->merchant = merchant;
  s->prefix = absl::GetFlag(FLAGS_prefix);
  if (s->prefix.empty()) {
    s->prefix =
        absl::StrCat("direct-", getpid(), "-", absl::ToUnixMillis(absl::Now()));
  }
  int threads = std::max(1, absl::GetFlag(FLAGS_threads));

  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i)
    workers.push_back(std::make_unique<Worker>(s.get(), i, threads));
  s->start = absl::Now();
  s->measure_start = s->start + s->spec.warmup;
  s->issue_end = s->start + s->spec.duration;
  std::vector<std::pair<std::string, int>> pids =
      ParseCpuPids(absl::GetFlag(FLAGS_cpu_pids));
  pids.emplace_back("direct", 0);
  CpuWindow cpu(std::move(pids), &s->rec, s->measure_start, s->issue_end);
  std::vector<std::thread> running;
  for (auto& w : workers) running.emplace_back([&w] { w->Run(); });
  for (auto& t : running) t.join();
  cpu.Wait();

  std::string table;
  nlohmann::json j = s->rec.Summarize(s->spec, s->measure_start, s->issue_end,
                                      s->issued.load(), &table);
  j["cpu"] = cpu.Json();
  j["threads"] = threads;
  j["verify_response_signatures"] =
      s->verify && merchant->verify_response_signatures;
  j["base_url"] = merchant->base_url;
  j["trans_id_prefix"] = s->prefix;
  j["still_outstanding_at_exit"] = s->outstanding.load();
  j["new_connections"] = s->new_connections.load();
  workers.clear();
  curl_global_cleanup();
  std::fputs(table.c_str(), stdout);
  if (!WriteJsonFile(absl::GetFlag(FLAGS_out), j)) {
    std::fprintf(stderr, "paykka-direct: cannot write %s\n",
                 absl::GetFlag(FLAGS_out).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace payorch::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "paykka-direct: sign and call PayKKa (the sandbox) directly; the "
      "baseline");
  absl::ParseCommandLine(argc, argv);
  return payorch::bench::Main();
}
