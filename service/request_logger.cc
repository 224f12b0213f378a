#include "service/request_logger.h"

#include "common/trace_context.h"
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
  if (!e.trace_id.empty()) j["trace_id"] = e.trace_id;
  if (!e.caller.empty()) j["caller"] = Bounded(e.caller);
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
  Write(level, ToJsonLine(entry));
}

namespace {

// {"msg":..., "trace_id":... (when the thread has a trace)} as a start.
nlohmann::ordered_json TracedLine(const char* msg) {
  nlohmann::ordered_json j;
  j["msg"] = msg;
  if (CurrentTrace().valid()) j["trace_id"] = CurrentTrace().TraceIdHex();
  return j;
}

std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void JsonLineLogger::LogPaykkaCall(const paykka::PaykkaCallRecord& call) {
  bool answered = call.outcome == "ok" || call.outcome == "http_4xx";
  LogLevel level = answered ? LogLevel::kDebug : LogLevel::kWarning;
  if (level < min_level_) return;
  nlohmann::ordered_json j = TracedLine("paykka call");
  j["endpoint"] = call.endpoint;
  j["outcome"] = call.outcome;
  if (call.http_status != 0) j["http_status"] = call.http_status;
  j["latency_ms"] = absl::ToDoubleMilliseconds(call.latency);
  if (!call.error.empty()) j["error"] = call.error;
  Write(level, Dump(j));
}

void JsonLineLogger::LogRedisCommand(const cache::RedisCommandRecord& command) {
  LogLevel level =
      command.outcome == "ok" ? LogLevel::kDebug : LogLevel::kWarning;
  if (level < min_level_) return;
  nlohmann::ordered_json j = TracedLine("redis command");
  j["command"] = command.command;
  j["outcome"] = command.outcome;
  j["latency_ms"] = absl::ToDoubleMilliseconds(command.latency);
  if (!command.error.empty()) j["error"] = command.error;
  Write(level, Dump(j));
}

void JsonLineLogger::LogConfigReload(const std::string& config,
                                     const std::string& file,
                                     const absl::Status& status,
                                     size_t entries) {
  LogLevel level = status.ok() ? LogLevel::kInfo : LogLevel::kError;
  if (level < min_level_) return;
  const std::string what = config == "merchants" ? "merchant configuration"
                           : config == "caller_policy" ? "caller policy"
                                                       : config;
  nlohmann::ordered_json j;
  j["msg"] =
      what + (status.ok() ? " reloaded" : " rejected, the previous one stays");
  j["config"] = config;
  j["file"] = file;
  j["result"] = status.ok() ? "applied" : "rejected";
  if (status.ok()) {
    j["entries"] = entries;
  } else {
    j["error"] = std::string(status.message());
    j["in_force"] = "previous";
  }
  Write(level, Dump(j));
}

void JsonLineLogger::Write(LogLevel level, std::string line) {
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  // {"msg":... -> {"level":"info","msg":...
  line.insert(
      1, std::string("\"level\":\"") + kNames[static_cast<int>(level)] + "\",");
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace payorch::service
