#ifndef PAYORCH_ADAPTERS_PAYKKA_PROBE_H_
#define PAYORCH_ADAPTERS_PAYKKA_PROBE_H_

// The PayKKa probe (`payorchctl probe`): confirms, against a real PayKKa
// environment and with a merchant's own configuration, what payorch assumes
// about PayKKa's protocol where PayKKa's documentation is silent
// (docs/paykka.md, "What the probe checks").
//
// A fixed, safe sequence with a fresh trans_id and the smallest amount:
//   1. Create Session (nobody ever pays it: no card is charged);
//   2. Query Session by session_id, then by trans_id: the configured
//      query_session_path first, then kQuerySessionPathCandidates;
//   3. Query Transaction by trans_id and by session_id (no order expected);
//   4. Create Session again with the same trans_id and body;
//   5. every signed answer verified with each response signature recipe;
//   6. the answers' field shapes compared with what mapping.cc expects.
// Each assumption ends CONFIRMED, REFUTED or UNKNOWN with its evidence
// (HTTP status, ret_code, ret_msg truncated), and where an alternative
// worked, the merchant settings (merchant_config.h) that adapt payorch.

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/paykka/http_transport.h"
#include "adapters/paykka/paykka_client.h"

namespace payorch::paykka {

// Query Session paths tried after the configured one.
inline constexpr absl::string_view kQuerySessionPathCandidates[] = {
    "/v3/payment/acq/session/query",  "/v3/payment/acq/session/get",
    "/v3/payment/acq/session/detail", "/v3/payment/acq/session/retrieve",
    "/v3/payment/session/query",      "/v3/payment/acq/query/session",
};

enum class Verdict { kConfirmed, kRefuted, kUnknown };
// "CONFIRMED", "REFUTED", "UNKNOWN".
absl::string_view VerdictName(Verdict verdict);

struct ProbeFinding {
  std::string id;          // e.g. "query_session_path"
  std::string assumption;  // what payorch assumes, one sentence
  Verdict verdict = Verdict::kUnknown;
  std::string evidence;  // what PayKKa answered (never a whole body)
  // Merchant settings that make payorch work with what was observed
  // (an object; empty when none applies).
  nlohmann::json config = nlohmann::json::object();
  std::string advice;  // what to do when no setting fixes it
};

struct ProbeReport {
  std::string merchant_id;
  std::string base_url;
  std::string trans_id;    // the probe's own, fresh
  std::string session_id;  // the session it created ("" if none)
  std::vector<ProbeFinding> findings;
  // Assumptions the probe cannot check without paying or charging.
  std::vector<std::string> not_checked;

  bool AllConfirmed() const;
  // Every finding's `config`, merged: the lines to apply.
  nlohmann::json ConfigToApply() const;
  // {"merchant_id", "base_url", "trans_id", "session_id", "all_confirmed",
  //  "findings": [{"id", "assumption", "status", "evidence", "config",
  //  "advice"}], "config_to_apply", "not_checked"}.
  nlohmann::json ToJson() const;
  // The human report: one line per assumption, then the settings to apply.
  std::string ToTable() const;
};

// One HTTP exchange, as the probe's sequence needs it: synchronous.
using ProbeExchange =
    std::function<absl::StatusOr<HttpResponse>(const HttpRequest&)>;

struct ProbeOptions {
  std::string currency = "USD";
  int64_t amount = 1;  // minor units: the smallest amount
  // Bound of each exchange (ExchangeOver) and of the session's life.
  absl::Duration call_timeout = absl::Seconds(20);
  absl::Duration session_lifetime = absl::Minutes(10);
  std::string return_url = "https://example.com/payorch-probe";
};

// True for PayKKa's production hosts (the "production" and
// "production-eu" base_url aliases).
bool IsProductionBaseUrl(absl::string_view base_url);

// kFailedPrecondition for a production base_url unless `allow_production`,
// and for plain http unless `allow_http` (a local sandbox).
absl::Status CheckProbeTarget(const MerchantConfig& merchant,
                              bool allow_production, bool allow_http);

// Runs the sequence above against merchant.base_url through `exchange`.
// Never fails: what could not be observed is UNKNOWN with the reason.
ProbeReport RunProbe(const MerchantConfig& merchant,
                     const ProbeOptions& options,
                     const ProbeExchange& exchange);

// A ProbeExchange over `transport`: each exchange waits (on the calling
// thread, for a command-line tool only) until the transport answers or
// `timeout` passes. `transport` must outlive the result.
ProbeExchange ExchangeOver(HttpTransport* transport, absl::Duration timeout);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_PROBE_H_
