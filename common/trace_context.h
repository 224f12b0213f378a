#ifndef PAYORCH_COMMON_TRACE_CONTEXT_H_
#define PAYORCH_COMMON_TRACE_CONTEXT_H_

// W3C Trace Context (https://www.w3.org/TR/trace-context/) for payorch's
// asynchronous call chains. The gRPC edge takes the caller's `traceparent`
// (or starts a new trace), makes it the current trace of the thread while it
// starts the work, and every hop of that work carries it along:
// EventLoop::Post/RunAfter and WorkerPool::Submit capture the current trace
// when work is queued and restore it while it runs, and the clients that call
// back from their own I/O (PayKKa HTTP, Redis) bind it to their callbacks
// (BindTrace). So a log line or an outgoing request can ask CurrentTrace()
// which request it belongs to, on whatever thread it runs.

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace payorch {

struct TraceContext {
  std::array<uint8_t, 16> trace_id{};  // all zero: no trace
  std::array<uint8_t, 8> span_id{};  // this hop's span (parent-id on the wire)
  uint8_t flags = 0;                 // bit 0: sampled

  bool valid() const;
  std::string TraceIdHex() const;  // 32 lower-case hex digits
  std::string SpanIdHex() const;   // 16 lower-case hex digits
  // "00-<trace-id>-<span-id>-<flags>".
  std::string ToTraceparent() const;

  // A header value per the spec's version-00 format (future versions: their
  // first four fields, as the spec asks). nullopt when malformed, version
  // "ff", or the trace or parent id is all zeros.
  static absl::optional<TraceContext> Parse(absl::string_view traceparent);
  // A new trace with random ids (flags 0: payorch records no spans).
  static TraceContext NewRoot();
  // The same trace and flags with a new random span id: the next hop.
  TraceContext Child() const;
};

// The trace of the work running on this thread (invalid when none).
const TraceContext& CurrentTrace();

// Makes `trace` current on this thread until destroyed; then restores the
// previous one. Not movable.
class ScopedTrace {
 public:
  explicit ScopedTrace(const TraceContext& trace);
  ~ScopedTrace();
  ScopedTrace(const ScopedTrace&) = delete;
  ScopedTrace& operator=(const ScopedTrace&) = delete;

 private:
  TraceContext previous_;
};

// `fn` wrapped so that it runs under the trace current now (unchanged when
// there is none).
absl::AnyInvocable<void()> BindTrace(absl::AnyInvocable<void()> fn);

template <typename... Args>
absl::AnyInvocable<void(Args...) &&> BindTrace(
    absl::AnyInvocable<void(Args...) &&> fn) {
  if (!CurrentTrace().valid()) return fn;
  return [trace = CurrentTrace(), fn = std::move(fn)](Args... args) mutable {
    ScopedTrace scope(trace);
    std::move(fn)(std::forward<Args>(args)...);
  };
}

}  // namespace payorch

#endif  // PAYORCH_COMMON_TRACE_CONTEXT_H_
