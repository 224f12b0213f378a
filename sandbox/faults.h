#ifndef PAYORCH_SANDBOX_FAULTS_H_
#define PAYORCH_SANDBOX_FAULTS_H_

// Fault injection for the PayKKa API endpoints: a seeded, reproducible plan
// of latency, error statuses, resets, closed keep-alive connections, proxy
// HTML pages, timeouts after commit, malformed bodies, wrong signatures and
// delayed visibility (README "Faults"). Not thread-safe (loop thread).

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace payorch::sandbox {

struct FaultRule {
  std::string endpoint = "*";  // a path, or "*" for every PayKKa endpoint
  int64_t latency_ms = 0;
  int64_t jitter_ms = 0;  // uniform extra latency in [0, jitter_ms]
  int http_status = 0;    // 0: none; else 429, 500, 502, 503 (or any 4xx/5xx)
  double error_rate = 0;  // defaults to 1.0 when http_status is set
  double timeout_after_commit_rate = 0;
  double reset_rate = 0;
  double malformed_json_rate = 0;
  double bad_signature_rate = 0;
  // Close the connection (FIN, no reply byte) after reading the request,
  // without applying it / after applying it.
  double close_before_commit_rate = 0;
  double close_after_commit_rate = 0;
  // An HTML page as a proxy, load balancer or WAF sends it (no PayKKa
  // envelope, unsigned), before the request reaches PayKKa or after PayKKa
  // applied it.
  int proxy_status = 0;
  double proxy_rate = 0;  // defaults to 1.0 when proxy_status is set
  bool proxy_after_commit = false;
  // A session or Initiate Transaction order created by the request stays
  // invisible to queries for this long.
  int64_t visibility_delay_ms = 0;
  // The rule only matches requests on a connection that already carried a
  // request (keep-alive reuse).
  bool only_reused_connections = false;
  // The rule matches at most this many requests, then is skipped (0: no
  // limit).
  int64_t times = 0;
};

struct FaultConfig {
  uint64_t seed = 42;
  std::vector<FaultRule> rules;
};

// Parses the fault object {"seed":N,"rules":[...]}. Also accepts a single
// rule object without "rules". kInvalidArgument naming the bad field.
absl::StatusOr<FaultConfig> ParseFaultConfig(const nlohmann::json& j);
nlohmann::json FaultConfigToJson(const FaultConfig& c);

// What to do with one request.
struct FaultDecision {
  absl::Duration latency = absl::ZeroDuration();
  int http_status = 0;  // reply with this error, operation not applied
  bool reset = false;   // close without a response, operation not applied
  bool timeout_after_commit = false;  // apply, then never answer
  bool malformed_json = false;
  bool bad_signature = false;
  bool close_before_commit = false;
  bool close_after_commit = false;
  int proxy_status = 0;  // send the proxy page with this status
  bool proxy_after_commit = false;
  absl::Duration visibility_delay = absl::ZeroDuration();
};

class FaultInjector {
 public:
  void Set(FaultConfig config);
  void Clear() { Set(FaultConfig{}); }
  const FaultConfig& config() const { return config_; }
  // Rolls the dice for a request to `endpoint` (`reused`: not the first
  // request on its connection). The first matching rule whose endpoint is
  // exactly `endpoint` wins, else the first matching "*" rule.
  FaultDecision Decide(const std::string& endpoint, bool reused);

 private:
  bool Roll(double rate);
  const FaultRule* Match(const std::string& endpoint, bool reused,
                         bool wildcard);
  FaultConfig config_;
  std::vector<int64_t> matched_;  // requests matched per rule
  std::mt19937_64 rng_{42};
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_FAULTS_H_
