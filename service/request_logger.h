#ifndef PAYORCH_SERVICE_REQUEST_LOGGER_H_
#define PAYORCH_SERVICE_REQUEST_LOGGER_H_

// One structured log line per request, written once at the gRPC edge. The
// entry holds identifiers and outcomes only: never secrets, card data, or
// request/response bodies.

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "adapters/paykka/instrumented_transport.h"
#include "cache/redis_client.h"

namespace payorch::service {

struct RequestLogEntry {
  std::string method;      // "CreateCheckout", ...
  std::string request_id;  // x-request-id, or generated
  std::string trace_id;    // W3C trace id (traceparent), caller's or generated
  std::string caller;      // identity from the client certificate, if any
  std::string caller_label;  // metrics: a policy identity or "other" (unlogged)
  std::string merchant_id;
  std::string trans_id;     // when the request has one
  std::string code;         // gRPC code name, "OK", "INVALID_ARGUMENT", ...
  std::string reason;       // ErrorInfo reason; empty when OK
  bool replayed = false;    // answered from the idempotency record
  int upstream_calls = 0;   // PayKKa calls made
  double upstream_ms = 0;   // time spent waiting for PayKKa
  double total_ms = 0;      // handler start to Finish()
  std::string store_error;  // a store failure after PayKKa answered
};

// The entry as one line of JSON (no trailing newline).
std::string ToJsonLine(const RequestLogEntry& entry);

// Receives one entry per finished request. Thread-safe.
class RequestLogger {
 public:
  virtual ~RequestLogger() = default;
  virtual void Log(const RequestLogEntry& entry) = 0;
};

// How much matters an entry: OK and the caller's own mistakes are kInfo;
// outcomes worth a look (PayKKa or Redis trouble, a failed store write after
// PayKKa answered) are kWarning; payorch bugs and PayKKa refusing our
// credentials are kError.
enum class LogLevel { kDebug, kInfo, kWarning, kError };
LogLevel SeverityOf(const RequestLogEntry& entry);
// "debug", "info", "warning", "error"; nullopt otherwise.
absl::optional<LogLevel> ParseLogLevel(const std::string& text);

// Writes ToJsonLine() + "\n" (with a "level" field) to a FILE (stderr by
// default), one whole line at a time, for entries at or above `min_level`.
class JsonLineLogger : public RequestLogger {
 public:
  explicit JsonLineLogger(std::FILE* out = stderr,
                          LogLevel min_level = LogLevel::kInfo)
      : out_(out), min_level_(min_level) {}
  void Log(const RequestLogEntry& entry) override;
  // One line per PayKKa HTTP call: debug when PayKKa answered 2xx/4xx,
  // warning otherwise. Carries the current trace id.
  void LogPaykkaCall(const paykka::PaykkaCallRecord& call);
  // One line per Redis command: debug when it succeeded, warning otherwise.
  // Carries the current trace id.
  void LogRedisCommand(const cache::RedisCommandRecord& command);
  // One line per reload of a watched file (`config`: "merchants",
  // "caller_policy"): info with the entries now in force when applied, error
  // with the reason when rejected (the previous configuration keeps
  // serving). The reason names fields and files, never key material.
  void LogConfigReload(const std::string& config, const std::string& file,
                       const absl::Status& status, size_t entries);

 private:
  // Writes `line` (a JSON object) with "level" first, if `level` passes.
  void Write(LogLevel level, std::string line);

  absl::Mutex mu_;
  std::FILE* const out_;
  const LogLevel min_level_;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_REQUEST_LOGGER_H_
