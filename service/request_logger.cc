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

LogLevel SeverityOf(const RequestLogEntry& e) {
  if (e.code == "INTERNAL" || e.code == "UNKNOWN" || e.code == "DATA_LOSS") {
    return LogLevel::kError;
  }
  if (e.code == "UNAVAILABLE" || e.code == "RESOURCE_EXHAUSTED" ||
      e.code == "DEADLINE_EXCEEDED" || !e.store_error.empty()) {
    return LogLevel::kWarning;
  }
  return LogLevel::kInfo;
}

absl::optional<LogLevel> ParseLogLevel(const std::string& text) {
  if (text == "debug") return LogLevel::kDebug;
  if (text == "info") return LogLevel::kInfo;
  if (text == "warning") return LogLevel::kWarning;
  if (text == "error") return LogLevel::kError;
  return absl::nullopt;
}

void JsonLineLogger::Log(const RequestLogEntry& entry) {
  LogLevel level = SeverityOf(entry);
  if (level < min_level_) return;
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  std::string line = ToJsonLine(entry);
  // {"msg":... -> {"level":"info","msg":...
  line.insert(
      1, std::string("\"level\":\"") + kNames[static_cast<int>(level)] + "\",");
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace payorch::service
