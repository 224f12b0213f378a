#include "adapters/paykka/probe.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "adapters/paykka/mapping.h"
#include "adapters/paykka/merchant_config.h"
#include "adapters/paykka/response_mapping.h"
#include "adapters/paykka/signer.h"
#include "common/crypto.h"
#include "common/errors.h"
#include "google/protobuf/util/time_util.h"

namespace payorch::paykka {
namespace {

using json = nlohmann::json;

// ret_msg and other PayKKa text in evidence is cut to this many bytes.
constexpr size_t kEvidenceTextBytes = 80;

std::string Cut(absl::string_view s) {
  if (s.size() <= kEvidenceTextBytes) return std::string(s);
  return absl::StrCat(s.substr(0, kEvidenceTextBytes), "...");
}

std::string Text(const json& obj, const char* key) {
  return FieldText(obj, key);
}

// One exchange as the probe saw it.
struct Observed {
  std::string path;
  absl::StatusOr<HttpResponse> response = absl::UnknownError("not sent");
  json body;  // the parsed body when it is a JSON object, else null
  std::string ret_code;
  std::string ret_msg;

  bool Success() const {
    return response.ok() && response->status >= 200 &&
           response->status <= 299 && body.is_object() &&
           (ret_code.empty() || ret_code == "000000");
  }
  bool Refusal() const {
    return response.ok() && !ret_code.empty() && ret_code != "000000";
  }
  json Data() const { return body.is_object() ? EffectiveData(body) : json(); }
  // "POST /path: HTTP 400, ret_code 010000 (text)".
  std::string Evidence() const {
    if (!response.ok()) {
      return absl::StrCat(path, ": no answer (",
                          Cut(response.status().message()), ")");
    }
    std::string out = absl::StrCat(path, ": HTTP ", response->status);
    if (!ret_code.empty()) {
      absl::StrAppend(&out, ", ret_code ", ret_code, " (", Cut(ret_msg), ")");
    } else if (!body.is_object()) {
      absl::StrAppend(&out, ", not a PayKKa envelope");
    }
    return out;
  }
};

ProbeFinding Finding(std::string id, std::string assumption, Verdict verdict,
                     std::string evidence) {
  ProbeFinding f;
  f.id = std::move(id);
  f.assumption = std::move(assumption);
  f.verdict = verdict;
  f.evidence = std::move(evidence);
  return f;
}

constexpr const char* kNotChecked[] = {
    "the webhook signature recipe: a notification needs a payment (payorchd "
    "verifies notifications with timestamp_nonce_body, whatever "
    "response_sign_recipe says)",
    "whether sessions and merchant-initiated charges share one trans_id "
    "namespace: that needs a charge",
    "the amount and time fields of orders: no order exists without a payment",
};

class Probe {
 public:
  Probe(const MerchantConfig& merchant, const ProbeOptions& options,
        const ProbeExchange& exchange)
      : merchant_(merchant), options_(options), exchange_(exchange) {}

  ProbeReport Run() {
    report_.merchant_id = merchant_.merchant_id;
    report_.base_url = merchant_.base_url;
    report_.trans_id = absl::StrCat(
        "payorch-probe-",
        absl::FormatTime("%Y%m%d%H%M%S", absl::Now(), absl::UTCTimeZone()), "-",
        RandomHex(4));
    CreateSession();
    QuerySession();
    QueryTransaction();
    RepeatCreate();
    CheckSignatures();
    CheckShapes();
    for (const char* what : kNotChecked) report_.not_checked.push_back(what);
    return std::move(report_);
  }

 private:
  Observed Call(absl::string_view path, const std::string& body,
                bool at_most_once);
  v1::CreateCheckoutRequest CheckoutRequest() const;
  void CreateSession();
  bool SessionFound(const Observed& o) const;
  void QuerySession();
  void QuerySessionByTransId();
  void QueryTransaction();
  void RepeatCreate();
  ProbeFinding RepeatRefused(const Observed& again) const;
  ProbeFinding DuplicateCode(const Observed& again) const;
  void CheckSignatures();
  std::vector<std::string> ShapeDifferences() const;
  void CheckShapes();
  void Add(ProbeFinding f) { report_.findings.push_back(std::move(f)); }

  const MerchantConfig& merchant_;
  const ProbeOptions& options_;
  const ProbeExchange& exchange_;
  ProbeReport report_;
  std::vector<HttpResponse> answers_;  // every HTTP answer, for signatures
  std::string create_body_;
  json create_data_;          // Create Session's answer, when it succeeded
  json session_data_;         // Query Session's answer, when one was found
  std::string session_path_;  // the Query Session path that answered
};

Observed Probe::Call(absl::string_view path, const std::string& body,
                     bool at_most_once) {
  Observed o;
  o.path = absl::StrCat("POST ", path);
  absl::StatusOr<HttpRequest> request =
      SignedPaykkaRequest(merchant_, path, body, absl::Now(), at_most_once);
  if (!request.ok()) {
    o.response = request.status();
    return o;
  }
  o.response = exchange_(*request);
  if (!o.response.ok()) return o;
  answers_.push_back(*o.response);
  json parsed = json::parse(o.response->body, nullptr, false);
  if (parsed.is_object()) {
    o.body = std::move(parsed);
    o.ret_code = Text(o.body, "ret_code");
    o.ret_msg = Text(o.body, "ret_msg");
  }
  return o;
}

v1::CreateCheckoutRequest Probe::CheckoutRequest() const {
  v1::CreateCheckoutRequest r;
  r.set_merchant_id(merchant_.merchant_id);
  r.set_trans_id(report_.trans_id);
  r.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  r.set_session_mode(v1::SESSION_MODE_HOSTED);
  r.set_amount(options_.amount);
  r.set_currency(options_.currency);
  r.set_return_url(options_.return_url);
  *r.mutable_expire_time() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(
          absl::ToUnixSeconds(absl::Now() + options_.session_lifetime));
  return r;
}

void Probe::CreateSession() {
  const v1::CreateCheckoutRequest request = CheckoutRequest();
  create_body_ = CreateSessionBody(merchant_.merchant_id, request);
  Observed o = Call(kCreateSessionPath, create_body_, /*at_most_once=*/true);
  ProbeFinding f = Finding("create_session",
                           absl::StrCat("Create Session (", kCreateSessionPath,
                                        ") answers with a session_id"),
                           Verdict::kUnknown, o.Evidence());
  const std::string session_id = Text(o.Data(), "session_id");
  if (o.Success() && !session_id.empty()) {
    f.verdict = Verdict::kConfirmed;
    absl::StrAppend(&f.evidence, ", session_id ", Cut(session_id));
    report_.session_id = session_id;
    create_data_ = o.Data();
    absl::StatusOr<v1::CreateCheckoutResponse> mapped =
        ParseCreateSessionData(create_data_, merchant_, request);
    if (!mapped.ok()) {
      f.verdict = Verdict::kRefuted;
      f.advice = absl::StrCat("payorch cannot read the answer: ",
                              mapped.status().message());
    }
  } else if (o.Success()) {
    f.verdict = Verdict::kRefuted;
    absl::StrAppend(&f.evidence, ", no session_id in the answer");
  } else {
    f.advice =
        "PayKKa did not create the session: check app_id, private_key_file, "
        "merchant_id and base_url (the evidence has PayKKa's ret_code)";
  }
  Add(std::move(f));
}

bool Probe::SessionFound(const Observed& o) const {
  if (!o.Success()) return false;
  const json data = o.Data();
  return Text(data, "session_id") == report_.session_id ||
         Text(data, "trans_id") == report_.trans_id;
}

// The configured path, then the candidates; reports which one answered.
void Probe::QuerySession() {
  ProbeFinding f = Finding(
      "query_session_path",
      absl::StrCat("Query Session answers at ", merchant_.query_session_path,
                   " (query_session_path) by session_id"),
      Verdict::kUnknown, "no session was created");
  if (!report_.session_id.empty()) {
    const std::string body =
        QuerySessionBody(merchant_.merchant_id,
                         {SessionLookup::Kind::kSessionId, report_.session_id});
    std::vector<std::string> paths = {merchant_.query_session_path};
    for (absl::string_view p : kQuerySessionPathCandidates) {
      if (p != merchant_.query_session_path) paths.emplace_back(p);
    }
    std::vector<std::string> tried;
    for (const std::string& path : paths) {
      Observed o = Call(path, body, /*at_most_once=*/false);
      tried.push_back(o.Evidence());
      if (!SessionFound(o)) continue;
      session_path_ = path;
      session_data_ = o.Data();
      break;
    }
    f.evidence = absl::StrJoin(tried, "; ");
    if (session_path_ == merchant_.query_session_path) {
      f.verdict = Verdict::kConfirmed;
    } else if (!session_path_.empty()) {
      f.verdict = Verdict::kRefuted;
      absl::StrAppend(&f.evidence, "; ", session_path_, " answered");
      f.config = {{"query_session_path", session_path_}};
    } else {
      f.advice =
          "no known path answered: ask PayKKa for Query Session's path; "
          "GetOrder still works through Query Transaction";
    }
  }
  Add(std::move(f));
  QuerySessionByTransId();
}

void Probe::QuerySessionByTransId() {
  ProbeFinding f = Finding(
      "query_session_by_trans_id",
      "Query Session finds the session by trans_id (adopting a checkout "
      "after an unknown outcome relies on it)",
      Verdict::kUnknown, "no Query Session path answered");
  if (!session_path_.empty()) {
    Observed o = Call(
        session_path_,
        QuerySessionBody(merchant_.merchant_id,
                         {SessionLookup::Kind::kTransId, report_.trans_id}),
        /*at_most_once=*/false);
    f.evidence = o.Evidence();
    if (SessionFound(o)) {
      f.verdict = Verdict::kConfirmed;
    } else if (o.response.ok()) {
      f.verdict = Verdict::kRefuted;
      f.advice =
          "payorch cannot adopt a checkout by trans_id after an unknown "
          "outcome (no setting covers it): keep Redis durable and tell "
          "payorch's maintainers";
    }
  }
  Add(std::move(f));
}

void Probe::QueryTransaction() {
  ProbeFinding f = Finding(
      "unpaid_session_has_no_order",
      "Query Transaction finds no order for an unpaid session (ret_code "
      "206024), by trans_id and by session_id",
      Verdict::kUnknown, "no session was created");
  if (!report_.session_id.empty()) {
    std::vector<std::string> evidence;
    int not_found = 0, found = 0;
    for (OrderLookup lookup :
         {OrderLookup{OrderLookup::Kind::kTransId, report_.trans_id},
          OrderLookup{OrderLookup::Kind::kSessionId, report_.session_id}}) {
      Observed o =
          Call(kQueryTransactionPath,
               QueryTransactionBody(merchant_.merchant_id, lookup), false);
      std::string e = o.Evidence();
      if (o.ret_code == "206024") ++not_found;
      if (o.Success()) {
        ++found;
        absl::StrAppend(&e, ", order_id ", Cut(Text(o.Data(), "order_id")),
                        " status ", Cut(Text(o.Data(), "status")));
      }
      evidence.push_back(std::move(e));
    }
    f.evidence = absl::StrJoin(evidence, "; ");
    if (not_found == 2) f.verdict = Verdict::kConfirmed;
    if (found > 0) {
      f.verdict = Verdict::kRefuted;
      f.advice =
          "PayKKa has an order before any payment: payorch would report it "
          "as the checkout's payment attempt (no setting covers it); tell "
          "payorch's maintainers";
    }
  }
  Add(std::move(f));
}

void Probe::RepeatCreate() {
  if (report_.session_id.empty()) {
    for (const char* id :
         {"duplicate_trans_id_refused", "duplicate_trans_id_codes"}) {
      Add(Finding(id, "a repeated trans_id (not probed)", Verdict::kUnknown,
                  "no session was created"));
    }
    return;
  }
  Observed again = Call(kCreateSessionPath, create_body_, true);
  Add(RepeatRefused(again));
  Add(DuplicateCode(again));
}

ProbeFinding Probe::RepeatRefused(const Observed& again) const {
  ProbeFinding f = Finding(
      "duplicate_trans_id_refused",
      "A create with a trans_id PayKKa already holds is refused and creates "
      "nothing",
      Verdict::kUnknown, again.Evidence());
  const std::string other = Text(again.Data(), "session_id");
  if (again.Success() && other == report_.session_id) {
    f.verdict = Verdict::kRefuted;
    absl::StrAppend(&f.evidence, ", returned the existing session ",
                    Cut(other));
    f.advice =
        "no setting needed: payorch takes the returned session (the same "
        "session_id) as the create's answer";
  } else if (again.Success()) {
    f.verdict = Verdict::kRefuted;
    absl::StrAppend(&f.evidence, ", created another session ",
                    other.empty() ? "(no session_id)" : Cut(other));
    f.advice =
        "PayKKa does not enforce trans_id uniqueness: payorch's idempotency "
        "record is the only protection; run Redis with persistence and "
        "replicas, and keep --idempotency_retention above the session life";
  } else if (again.Refusal()) {
    f.verdict = Verdict::kConfirmed;
    absl::StrAppend(&f.evidence, ", no object returned");
  }
  return f;
}

ProbeFinding Probe::DuplicateCode(const Observed& again) const {
  ProbeFinding f =
      Finding("duplicate_trans_id_codes",
              absl::StrCat(
                  "PayKKa's duplicate refusal has a ret_code listed in "
                  "duplicate_trans_id_codes [",
                  absl::StrJoin(merchant_.duplicate_trans_id_codes, ", "), "]"),
              Verdict::kUnknown, "PayKKa did not refuse the repeated trans_id");
  if (!again.Refusal()) return f;
  absl::Status read =
      ClassifyResponse(CallKind::kMutating, again.response, absl::OkStatus(),
                       merchant_.duplicate_trans_id_codes)
          .status();
  std::optional<Reason> reason = ReasonOf(read);
  f.evidence = absl::StrCat(
      again.Evidence(), "; payorch reads it as ",
      reason ? ReasonName(*reason) : "an error",
      IsDuplicateTransIdRefusal(read) ? " (duplicate fast path)" : "");
  if (IsDuplicateTransIdRefusal(read)) {
    f.verdict = Verdict::kConfirmed;
  } else if (HasReason(read, Reason::kPspRejected)) {
    f.verdict = Verdict::kRefuted;
    f.config = {{"duplicate_trans_id_codes", json::array({again.ret_code})}};
    f.advice =
        "until then payorch still looks the trans_id up before storing the "
        "refusal";
  } else {
    f.verdict = Verdict::kRefuted;
    f.advice =
        "payorch does not read this answer as a refusal (no setting covers "
        "it): it stays an unknown outcome, settled by the lookup";
  }
  return f;
}

void Probe::CheckSignatures() {
  const ResponseSignRecipe configured = merchant_.response_sign_recipe;
  ProbeFinding f = Finding("response_sign_recipe",
                           absl::StrCat("PayKKa's answers are signed with the ",
                                        ResponseSignRecipeName(configured),
                                        " recipe (response_sign_recipe)"),
                           Verdict::kUnknown, "");
  size_t is_signed = 0;
  for (const HttpResponse& r : answers_) {
    if (!r.Header(kSignHeader).empty()) ++is_signed;
  }
  f.evidence =
      absl::StrCat(is_signed, " of ", answers_.size(), " answers signed");
  if (!merchant_.platform_public_key.has_value()) {
    f.advice =
        "set paykka_public_key_file (PayKKa's platform public key) and run "
        "the probe again";
  } else if (is_signed > 0) {
    std::optional<ResponseSignRecipe> works;
    for (ResponseSignRecipe recipe :
         {configured, configured == ResponseSignRecipe::kBody
                          ? ResponseSignRecipe::kTimestampNonceBody
                          : ResponseSignRecipe::kBody}) {
      size_t verified = 0;
      for (const HttpResponse& r : answers_) {
        if (!r.Header(kSignHeader).empty() &&
            VerifyResponseSignature(*merchant_.platform_public_key, recipe, r)
                .ok()) {
          ++verified;
        }
      }
      absl::StrAppend(&f.evidence, "; ", verified, " verify with ",
                      ResponseSignRecipeName(recipe));
      if (verified == is_signed && !works.has_value()) works = recipe;
    }
    if (works == configured) {
      f.verdict = Verdict::kConfirmed;
      if (!merchant_.verify_response_signatures) {
        f.advice =
            "verify_response_signatures is off: payorch does not check these "
            "signatures until it is set to true";
      }
    } else if (works.has_value()) {
      f.verdict = Verdict::kRefuted;
      f.config = {{"response_sign_recipe",
                   std::string(ResponseSignRecipeName(*works))}};
    } else {
      f.advice =
          "no recipe verifies every answer: check that paykka_public_key_file "
          "is PayKKa's platform key for this environment";
    }
  }
  if (is_signed < answers_.size() && merchant_.verify_response_signatures) {
    absl::StrAppend(&f.advice, f.advice.empty() ? "" : "; ",
                    "unsigned answers fail verification "
                    "(verify_response_signatures is on)");
  }
  Add(std::move(f));
}

// A JSON value's type as PayKKa's answers show it.
std::string TypeOf(const json& v) {
  if (v.is_string())
    return absl::StrCat("a string \"", Cut(v.get<std::string>()), "\"");
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a decimal number";
  return absl::StrCat("a JSON ", v.type_name());
}

// What differs from mapping.h's expectations in the answers' fields.
std::vector<std::string> Probe::ShapeDifferences() const {
  std::vector<std::string> out;
  for (const json* data : {&create_data_, &session_data_}) {
    const char* what =
        data == &create_data_ ? "Create Session" : "Query Session";
    if (!data->is_object()) continue;
    if (auto it = data->find("expire_time"); it != data->end()) {
      if (!it->is_string() || !ParsePaykkaTime(it->get<std::string>()).ok()) {
        out.push_back(absl::StrCat(what, " expire_time is ", TypeOf(*it),
                                   ", not RFC 3339 with an offset"));
      }
    }
    if (auto it = data->find("amount"); it != data->end()) {
      if (!it->is_number_integer() && !it->is_number_unsigned()) {
        out.push_back(
            absl::StrCat(what, " amount is ", TypeOf(*it), ", not an integer"));
      } else if (it->get<int64_t>() != options_.amount) {
        out.push_back(absl::StrCat(what, " amount is ", it->dump(), " for ",
                                   options_.amount, " sent in minor units"));
      }
    }
  }
  if (session_data_.is_object()) {
    const std::string status = Text(session_data_, "status");
    if (SessionStatusFromPaykka(status) == v1::SESSION_STATUS_OTHER) {
      out.push_back(absl::StrCat("Query Session status \"", Cut(status),
                                 "\" is not one payorch knows"));
    }
    absl::StatusOr<v1::GetSessionStatusResponse> mapped =
        ParseSessionData(session_data_);
    if (!mapped.ok()) {
      out.push_back(absl::StrCat("payorch cannot read Query Session's answer: ",
                                 Cut(mapped.status().message())));
    }
  }
  return out;
}

void Probe::CheckShapes() {
  ProbeFinding f = Finding(
      "field_shapes",
      "Amounts are JSON integers in minor units, times RFC 3339 with an "
      "offset, session statuses known (as mapping.cc reads them)",
      Verdict::kUnknown, "no answer with session fields");
  if (create_data_.is_object() || session_data_.is_object()) {
    std::vector<std::string> differences = ShapeDifferences();
    if (differences.empty()) {
      f.verdict = Verdict::kConfirmed;
      f.evidence =
          absl::StrCat("Create Session",
                       session_data_.is_object() ? " and Query Session" : "",
                       " answers as expected");
    } else {
      f.verdict = Verdict::kRefuted;
      f.evidence = absl::StrJoin(differences, "; ");
      f.advice =
          "no setting covers field shapes: payorch's mapping reads digit "
          "strings and +08:00 / +0800 / Z times; anything else, tell "
          "payorch's maintainers";
    }
  }
  Add(std::move(f));
}

}  // namespace

absl::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kConfirmed:
      return "CONFIRMED";
    case Verdict::kRefuted:
      return "REFUTED";
    case Verdict::kUnknown:
      break;
  }
  return "UNKNOWN";
}

bool ProbeReport::AllConfirmed() const {
  return std::all_of(findings.begin(), findings.end(), [](const auto& f) {
    return f.verdict == Verdict::kConfirmed;
  });
}

json ProbeReport::ConfigToApply() const {
  json out = json::object();
  for (const ProbeFinding& f : findings) out.update(f.config);
  return out;
}

json ProbeReport::ToJson() const {
  json out = {{"merchant_id", merchant_id},
              {"base_url", base_url},
              {"trans_id", trans_id},
              {"session_id", session_id},
              {"all_confirmed", AllConfirmed()},
              {"findings", json::array()},
              {"config_to_apply", ConfigToApply()},
              {"not_checked", not_checked}};
  for (const ProbeFinding& f : findings) {
    out["findings"].push_back({{"id", f.id},
                               {"assumption", f.assumption},
                               {"status", std::string(VerdictName(f.verdict))},
                               {"evidence", f.evidence},
                               {"config", f.config},
                               {"advice", f.advice}});
  }
  return out;
}

std::string ProbeReport::ToTable() const {
  std::string out = absl::StrCat(
      "PayKKa probe: merchant ", merchant_id, " at ", base_url, "\ntrans_id ",
      trans_id, session_id.empty() ? "" : ", session ", session_id, "\n\n");
  for (const ProbeFinding& f : findings) {
    absl::StrAppend(
        &out, absl::StrFormat("%-10s %s: %s\n", VerdictName(f.verdict), f.id,
                              f.assumption));
    absl::StrAppend(&out, "           evidence: ", f.evidence, "\n");
    for (const auto& [key, value] : f.config.items()) {
      absl::StrAppend(&out, "           fix: \"", key, "\": ", value.dump(),
                      "\n");
    }
    if (!f.advice.empty())
      absl::StrAppend(&out, "           note: ", f.advice, "\n");
  }
  absl::StrAppend(&out, "\nNot checked (the probe never pays or charges):\n");
  for (const std::string& n : not_checked)
    absl::StrAppend(&out, "  - ", n, "\n");
  const json config = ConfigToApply();
  if (config.empty()) {
    absl::StrAppend(&out, "\nNo settings to change for merchant ", merchant_id,
                    ".\n");
    return out;
  }
  absl::StrAppend(&out, "\nApply to merchant ", merchant_id,
                  " in the merchants config:\n");
  std::vector<std::string> lines;
  for (const auto& [key, value] : config.items()) {
    lines.push_back(absl::StrCat("  \"", key, "\": ", value.dump()));
  }
  absl::StrAppend(&out, absl::StrJoin(lines, ",\n"), "\n");
  return out;
}

bool IsProductionBaseUrl(absl::string_view base_url) {
  for (absl::string_view production :
       {kProductionBaseUrl, kProductionEuBaseUrl}) {
    if (base_url == production ||
        absl::StartsWith(base_url, absl::StrCat(production, ":")) ||
        absl::StartsWith(base_url, absl::StrCat(production, "/"))) {
      return true;
    }
  }
  return false;
}

absl::Status CheckProbeTarget(const MerchantConfig& merchant,
                              bool allow_production, bool allow_http) {
  if (IsProductionBaseUrl(merchant.base_url) && !allow_production) {
    return absl::FailedPreconditionError(absl::StrCat(
        "merchant ", merchant.merchant_id, ": base_url ", merchant.base_url,
        " is PayKKa production; the probe creates sessions there only with "
        "--allow_production"));
  }
  if (absl::StartsWith(merchant.base_url, "http://") && !allow_http) {
    return absl::FailedPreconditionError(absl::StrCat(
        "merchant ", merchant.merchant_id, ": base_url ", merchant.base_url,
        " is plain http (a local sandbox only: --allow_http)"));
  }
  return absl::OkStatus();
}

ProbeReport RunProbe(const MerchantConfig& merchant,
                     const ProbeOptions& options,
                     const ProbeExchange& exchange) {
  return Probe(merchant, options, exchange).Run();
}

ProbeExchange ExchangeOver(HttpTransport* transport, absl::Duration timeout) {
  return [transport,
          timeout](const HttpRequest& request) -> absl::StatusOr<HttpResponse> {
    // Shared with the callback, which may run after a (never expected)
    // give-up below.
    struct Slot {
      absl::Mutex mu;
      std::optional<absl::StatusOr<HttpResponse>> result ABSL_GUARDED_BY(mu);
    };
    auto slot = std::make_shared<Slot>();
    transport->Send(request, absl::Now() + timeout,
                    [slot](absl::StatusOr<HttpResponse> result) {
                      absl::MutexLock lock(&slot->mu);
                      slot->result = std::move(result);
                    });
    absl::MutexLock lock(&slot->mu);
    auto answered = [&slot]() ABSL_SHARED_LOCKS_REQUIRED(slot->mu) {
      return slot->result.has_value();
    };
    if (!slot->mu.AwaitWithTimeout(absl::Condition(&answered),
                                   timeout + absl::Seconds(5))) {
      return absl::DeadlineExceededError("the transport did not answer");
    }
    return *std::move(slot->result);
  };
}

}  // namespace payorch::paykka
