#include "service/request_logger.h"

#include "nlohmann/json.hpp"

namespace payorch::service {
namespace {

// Caller-supplied identifiers are logged even when invalid: bound them.
std::string Bounded(const std::string& s) {
  constexpr size_t kMax = 128;
  return s.size() <= kMax ? s : s.substr(0, kMax) + "...";
}

}  // namespace

std::string ToJsonLine(const RequestLogEntry& e) {
  nlohmann::ordered_json j;
  j["msg"] = "request";
  j["method"] = e.method;
  j["request_id"] = Bounded(e.request_id);
  j["merchant_id"] = Bounded(e.merchant_id);
  j["trans_id"] = Bounded(e.trans_id);
  j["code"] = e.code;
  if (!e.reason.empty()) j["reason"] = e.reason;
  j["replayed"] = e.replayed;
  j["upstream_calls"] = e.upstream_calls;
  j["upstream_ms"] = e.upstream_ms;
  j["total_ms"] = e.total_ms;
  if (!e.store_error.empty()) j["store_error"] = e.store_error;
  // Strings come from callers: replace invalid UTF-8 rather than throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void JsonLineLogger::Log(const RequestLogEntry& entry) {
  std::string line = ToJsonLine(entry);
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace payorch::service
