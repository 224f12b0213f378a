#ifndef PAYORCH_SANDBOX_FAULTS_H_
#define PAYORCH_SANDBOX_FAULTS_H_

// Fault injection for the PayKKa API endpoints: a seeded, reproducible plan
// of latency, error statuses, resets, timeouts after commit, malformed bodies
// and wrong signatures (README "Faults"). Not thread-safe (loop thread).

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
};

class FaultInjector {
 public:
  void Set(FaultConfig config);
  void Clear() { Set(FaultConfig{}); }
  const FaultConfig& config() const { return config_; }
  // Rolls the dice for a request to `endpoint`; the first rule whose
  // endpoint matches exactly wins, else the first "*" rule.
  FaultDecision Decide(const std::string& endpoint);

 private:
  bool Roll(double rate);
  FaultConfig config_;
  std::mt19937_64 rng_{42};
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_FAULTS_H_
