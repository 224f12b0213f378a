#include "common/trace_context.h"

#include <openssl/rand.h>

#include <algorithm>
#include <random>

namespace payorch {
namespace {

thread_local TraceContext current_trace;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // the spec allows lower-case hex only
}

// Decodes exactly N bytes of lower-case hex; false on anything else.
template <size_t N>
bool DecodeHex(absl::string_view hex, std::array<uint8_t, N>* out) {
  if (hex.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
std::string EncodeHex(const std::array<uint8_t, N>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * N, '0');
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](uint8_t b) { return b == 0; });
}

template <size_t N>
void FillRandomNonZero(std::array<uint8_t, N>* bytes) {
  do {
    if (RAND_bytes(bytes->data(), static_cast<int>(N)) != 1) {
      // No entropy from OpenSSL: ids only need to be unique, not secret.
      static thread_local std::mt19937_64 rng{std::random_device{}()};
      for (uint8_t& b : *bytes) b = static_cast<uint8_t>(rng());
    }
  } while (AllZero(*bytes));
}

}  // namespace

bool TraceContext::valid() const { return !AllZero(trace_id); }

std::string TraceContext::TraceIdHex() const { return EncodeHex(trace_id); }

std::string TraceContext::SpanIdHex() const { return EncodeHex(span_id); }

std::string TraceContext::ToTraceparent() const {
  std::array<uint8_t, 1> f{flags};
  return "00-" + TraceIdHex() + "-" + SpanIdHex() + "-" + EncodeHex(f);
}

absl::optional<TraceContext> TraceContext::Parse(absl::string_view header) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2+1+32+1+16+1+2.
  constexpr size_t kLength = 55;
  std::array<uint8_t, 1> version{}, flags{};
  TraceContext out;
  if (header.size() < kLength || !DecodeHex(header.substr(0, 2), &version) ||
      version[0] == 0xff) {
    return absl::nullopt;
  }
  // Version 00 is exactly this long; later versions may append "-..." fields.
  if (version[0] == 0 ? header.size() != kLength
                      : header.size() > kLength && header[kLength] != '-') {
    return absl::nullopt;
  }
  if (header[2] != '-' || header[35] != '-' || header[52] != '-' ||
      !DecodeHex(header.substr(3, 32), &out.trace_id) ||
      !DecodeHex(header.substr(36, 16), &out.span_id) ||
      !DecodeHex(header.substr(53, 2), &flags) || AllZero(out.trace_id) ||
      AllZero(out.span_id)) {
    return absl::nullopt;
  }
  out.flags = flags[0];
  return out;
}

TraceContext TraceContext::NewRoot() {
  TraceContext out;
  FillRandomNonZero(&out.trace_id);
  FillRandomNonZero(&out.span_id);
  return out;
}

TraceContext TraceContext::Child() const {
  TraceContext out = *this;
  FillRandomNonZero(&out.span_id);
  return out;
}

const TraceContext& CurrentTrace() { return current_trace; }

ScopedTrace::ScopedTrace(const TraceContext& trace) : previous_(current_trace) {
  current_trace = trace;
}

ScopedTrace::~ScopedTrace() { current_trace = previous_; }

absl::AnyInvocable<void()> BindTrace(absl::AnyInvocable<void()> fn) {
  if (!CurrentTrace().valid()) return fn;
  return [trace = CurrentTrace(), fn = std::move(fn)]() mutable {
    ScopedTrace scope(trace);
    fn();
  };
}

}  // namespace payorch
