#include "sandbox/faults.h"

#include <tuple>

#include "absl/strings/str_cat.h"

namespace payorch::sandbox {
namespace {

using Json = nlohmann::json;

absl::Status ReadRate(const Json& r, const char* name, double* out) {
  auto it = r.find(name);
  if (it == r.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a number"));
  }
  double v = it->get<double>();
  if (v < 0 || v > 1) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be in [0,1]"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ReadInt(const Json& r, const char* name, int64_t max,
                     int64_t* out) {
  auto it = r.find(name);
  if (it == r.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
      it->get<int64_t>() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be an integer in [0,", max, "]"));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& r, const char* name, bool* out) {
  auto it = r.find(name);
  if (it == r.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a boolean"));
  }
  *out = it->get<bool>();
  return absl::OkStatus();
}

// An HTTP error status: 0 (none) or 400..599.
absl::Status ReadStatus(const Json& r, const char* name, int* out) {
  int64_t status = 0;
  if (auto s = ReadInt(r, name, 599, &status); !s.ok()) return s;
  if (status != 0 && status < 400) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be 4xx or 5xx"));
  }
  *out = static_cast<int>(status);
  return absl::OkStatus();
}

absl::Status ReadNumbers(const Json& r, FaultRule* rule) {
  constexpr int64_t kMaxMs = 600000;
  for (auto [name, field, max] :
       {std::tuple<const char*, int64_t*, int64_t>{"latency_ms",
                                                   &rule->latency_ms, kMaxMs},
        {"jitter_ms", &rule->jitter_ms, kMaxMs},
        {"visibility_delay_ms", &rule->visibility_delay_ms, kMaxMs},
        {"times", &rule->times, int64_t{1} << 40}}) {
    if (auto s = ReadInt(r, name, max, field); !s.ok()) return s;
  }
  if (auto s = ReadStatus(r, "http_status", &rule->http_status); !s.ok()) {
    return s;
  }
  if (auto s = ReadStatus(r, "proxy_status", &rule->proxy_status); !s.ok()) {
    return s;
  }
  // A status alone means "always".
  if (rule->http_status != 0) rule->error_rate = 1.0;
  if (rule->proxy_status != 0) rule->proxy_rate = 1.0;
  for (auto [name, field] :
       {std::pair<const char*, double*>{"error_rate", &rule->error_rate},
        {"timeout_after_commit_rate", &rule->timeout_after_commit_rate},
        {"reset_rate", &rule->reset_rate},
        {"malformed_json_rate", &rule->malformed_json_rate},
        {"bad_signature_rate", &rule->bad_signature_rate},
        {"close_before_commit_rate", &rule->close_before_commit_rate},
        {"close_after_commit_rate", &rule->close_after_commit_rate},
        {"proxy_rate", &rule->proxy_rate}}) {
    if (auto s = ReadRate(r, name, field); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<FaultRule> ParseRule(const Json& r) {
  if (!r.is_object()) {
    return absl::InvalidArgumentError("each rule must be an object");
  }
  FaultRule rule;
  if (auto it = r.find("endpoint"); it != r.end() && !it->is_null()) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError("endpoint must be a string");
    }
    rule.endpoint = it->get<std::string>();
  }
  if (auto s = ReadNumbers(r, &rule); !s.ok()) return s;
  for (auto [name, field] :
       {std::pair<const char*, bool*>{"proxy_after_commit",
                                      &rule.proxy_after_commit},
        {"only_reused_connections", &rule.only_reused_connections}}) {
    if (auto s = ReadBool(r, name, field); !s.ok()) return s;
  }
  return rule;
}

}  // namespace

absl::StatusOr<FaultConfig> ParseFaultConfig(const Json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError("fault config must be a JSON object");
  }
  FaultConfig c;
  if (auto it = j.find("seed"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError("seed must be an integer");
    }
    c.seed = it->get<uint64_t>();
  }
  if (auto it = j.find("rules"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) {
      return absl::InvalidArgumentError("rules must be an array");
    }
    for (const Json& r : *it) {
      absl::StatusOr<FaultRule> rule = ParseRule(r);
      if (!rule.ok()) return rule.status();
      c.rules.push_back(*rule);
    }
  } else if (j.size() > (j.contains("seed") ? 1u : 0u)) {
    absl::StatusOr<FaultRule> rule = ParseRule(j);
    if (!rule.ok()) return rule.status();
    c.rules.push_back(*rule);
  }
  return c;
}

Json FaultConfigToJson(const FaultConfig& c) {
  Json rules = Json::array();
  for (const FaultRule& r : c.rules) {
    rules.push_back(
        Json{{"endpoint", r.endpoint},
             {"latency_ms", r.latency_ms},
             {"jitter_ms", r.jitter_ms},
             {"http_status", r.http_status},
             {"error_rate", r.error_rate},
             {"timeout_after_commit_rate", r.timeout_after_commit_rate},
             {"reset_rate", r.reset_rate},
             {"malformed_json_rate", r.malformed_json_rate},
             {"bad_signature_rate", r.bad_signature_rate},
             {"close_before_commit_rate", r.close_before_commit_rate},
             {"close_after_commit_rate", r.close_after_commit_rate},
             {"proxy_status", r.proxy_status},
             {"proxy_rate", r.proxy_rate},
             {"proxy_after_commit", r.proxy_after_commit},
             {"visibility_delay_ms", r.visibility_delay_ms},
             {"only_reused_connections", r.only_reused_connections},
             {"times", r.times}});
  }
  return Json{{"seed", c.seed}, {"rules", rules}};
}

void FaultInjector::Set(FaultConfig config) {
  config_ = std::move(config);
  matched_.assign(config_.rules.size(), 0);
  rng_.seed(config_.seed);
}

bool FaultInjector::Roll(double rate) {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  return std::uniform_real_distribution<double>(0, 1)(rng_) < rate;
}

const FaultRule* FaultInjector::Match(const std::string& endpoint, bool reused,
                                      bool wildcard) {
  for (size_t i = 0; i < config_.rules.size(); ++i) {
    const FaultRule& r = config_.rules[i];
    if (r.endpoint != (wildcard ? std::string("*") : endpoint)) continue;
    if (r.only_reused_connections && !reused) continue;
    if (r.times > 0 && matched_[i] >= r.times) continue;
    ++matched_[i];
    return &r;
  }
  return nullptr;
}

FaultDecision FaultInjector::Decide(const std::string& endpoint, bool reused) {
  FaultDecision d;
  const FaultRule* rule = Match(endpoint, reused, false);
  if (rule == nullptr) rule = Match(endpoint, reused, true);
  if (rule == nullptr) return d;
  int64_t ms = rule->latency_ms;
  if (rule->jitter_ms > 0) {
    ms += std::uniform_int_distribution<int64_t>(0, rule->jitter_ms)(rng_);
  }
  d.latency = absl::Milliseconds(ms);
  // Every roll is drawn, in a fixed order, so a seed replays exactly.
  d.reset = Roll(rule->reset_rate);
  d.http_status = Roll(rule->error_rate) ? rule->http_status : 0;
  d.timeout_after_commit = Roll(rule->timeout_after_commit_rate);
  d.malformed_json = Roll(rule->malformed_json_rate);
  d.bad_signature = Roll(rule->bad_signature_rate);
  d.close_before_commit = Roll(rule->close_before_commit_rate);
  d.close_after_commit = Roll(rule->close_after_commit_rate);
  d.proxy_status = Roll(rule->proxy_rate) ? rule->proxy_status : 0;
  d.proxy_after_commit = rule->proxy_after_commit;
  d.visibility_delay = absl::Milliseconds(rule->visibility_delay_ms);
  return d;
}

}  // namespace payorch::sandbox
