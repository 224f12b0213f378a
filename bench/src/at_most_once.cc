// at-most-once: what each candidate mechanism for "a create or charge is
// written to the wire at most once" adds per call, measured the way
// production reaches PayKKa: HTTPS across an emulated round-trip time
// (bench/at_most_once.sh starts paykka-sandbox's HTTPS listener behind
// rtt-relay). Sends --count sequential POSTs through CurlMultiTransport and
// prints one JSON line: latency p50/p99 and CPU (user+system) per call.
//
// Mechanisms:
//   keepalive      today's body (POSTFIELDS) on keep-alive connections: the
//                  baseline, NOT at most once (libcurl may re-send)
//   noseek         keep-alive, body through a read callback libcurl cannot
//                  rewind (the chosen mechanism)
//   fresh          a new TCP + TLS connection per request, closed after it

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "adapters/paykka/curl_transport.h"
#include "common/event_loop.h"

ABSL_FLAG(std::string, url, "", "https://127.0.0.1:PORT/path to POST to");
ABSL_FLAG(std::string, ca_file, "", "CA bundle that signed the server");
ABSL_FLAG(std::string, mechanism, "noseek", "keepalive | noseek | fresh");
ABSL_FLAG(int, count, 200, "sequential requests (after 5 warm-up ones)");

namespace {

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("at-most-once mechanism benchmark");
  absl::ParseCommandLine(argc, argv);
  const std::string mechanism = absl::GetFlag(FLAGS_mechanism);
  auto loop = payorch::EventLoop::Start("bench-io");
  if (!loop.ok()) return 1;
  payorch::paykka::CurlMultiTransport::Options options;
  options.ca_file = absl::GetFlag(FLAGS_ca_file);
  options.fresh_connection_for_at_most_once = mechanism == "fresh";
  auto transport =
      payorch::paykka::CurlMultiTransport::Create(loop->get(), options);
  if (!transport.ok()) return 1;
  const int count = absl::GetFlag(FLAGS_count);
  std::vector<double> ms;
  double cpu_start = 0;
  int errors = 0;
  for (int i = -5; i < count; ++i) {
    if (i == 0) cpu_start = CpuSeconds();
    payorch::paykka::HttpRequest request;
    request.url = absl::GetFlag(FLAGS_url);
    request.headers = {{"content-type", "application/json"}};
    request.body = R"({"merchant_id":"M1","trans_id":"bench"})";
    request.at_most_once = mechanism != "keepalive";
    absl::Notification done;
    const absl::Time start = absl::Now();
    (*transport)
        ->Send(std::move(request), start + absl::Seconds(10),
               [&](absl::StatusOr<payorch::paykka::HttpResponse> r) {
                 if (!r.ok()) ++errors;
                 done.Notify();
               });
    done.WaitForNotification();
    if (i >= 0) ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  const double cpu_us = (CpuSeconds() - cpu_start) * 1e6 / count;
  std::printf(
      "{\"mechanism\":\"%s\",\"count\":%d,\"errors\":%d,\"p50_ms\":%.2f,"
      "\"p99_ms\":%.2f,\"cpu_us_per_call\":%.0f}\n",
      mechanism.c_str(), count, errors, Percentile(ms, 0.5),
      Percentile(ms, 0.99), cpu_us);
  transport->reset();
  (*loop)->Stop();
  return errors == 0 ? 0 : 2;
}
