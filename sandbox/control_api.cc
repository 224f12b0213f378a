#include "sandbox/control_api.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"

namespace payorch::sandbox {
namespace {

ApiResponse Error(int status, const std::string& msg) {
  return {status, Json{{"error", msg}}};
}

// Matches "a/b/c" against a pattern with "*" segments, collecting them.
bool Match(const std::vector<std::string>& parts, const char* pattern,
           std::vector<std::string>* args) {
  std::vector<std::string> want = absl::StrSplit(pattern, '/');
  if (want.size() != parts.size()) return false;
  args->clear();
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == "*") {
      args->push_back(parts[i]);
    } else if (want[i] != parts[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

const std::vector<ControlApi::Route>& ControlApi::Routes() {
  static const std::vector<Route> kRoutes = {
      {Method::kPost, "sessions/*/pay", &ControlApi::Pay},
      {Method::kPost, "orders/*/complete", &ControlApi::Complete},
      {Method::kPost, "tokens/*/next-outcome", &ControlApi::NextOutcome},
      {Method::kPost, "refunds/*/complete", &ControlApi::CompleteRefund},
      {Method::kPost, "refund-mode", &ControlApi::RefundMode},
      {Method::kPost, "clock/advance", &ControlApi::AdvanceClock},
      {Method::kGet, "clock", &ControlApi::Clock},
      {Method::kGet, "counters", &ControlApi::Counters},
      {Method::kGet, "trans-ids/*", &ControlApi::TransId},
      {Method::kPut, "duplicate-trans-id", &ControlApi::SetDuplicates},
      {Method::kPost, "duplicate-trans-id", &ControlApi::SetDuplicates},
      {Method::kGet, "duplicate-trans-id", &ControlApi::GetDuplicates},
      {Method::kDelete, "duplicate-trans-id", &ControlApi::RestoreDuplicates},
      {Method::kPost, "reset", &ControlApi::Reset},
      {Method::kGet, "webhooks", &ControlApi::Webhooks},
      {Method::kPost, "webhooks/*/redeliver", &ControlApi::Redeliver},
      {Method::kPut, "faults", &ControlApi::SetFaults},
      {Method::kPost, "faults", &ControlApi::SetFaults},
      {Method::kGet, "faults", &ControlApi::GetFaults},
      {Method::kDelete, "faults", &ControlApi::ClearFaults},
      {Method::kPost, "merchants/*/public-keys", &ControlApi::AddKey},
      {Method::kGet, "merchants/*/public-keys", &ControlApi::Keys},
      {Method::kDelete, "merchants/*/public-keys/*", &ControlApi::RetireKey},
  };
  return kRoutes;
}

ApiResponse ControlApi::Handle(Method method, const std::string& path,
                               const std::string& body) {
  Json json = Json::object();
  if (!body.empty()) {
    json = Json::parse(body, nullptr, false);
    if (json.is_discarded()) return Error(400, "body is not JSON");
  }
  std::vector<std::string> parts =
      absl::StrSplit(path.substr(strlen("/sandbox/")), '/');
  Args args;
  for (const Route& r : Routes()) {
    if (r.method == method && Match(parts, r.pattern, &args)) {
      return (this->*r.handler)(args, json);
    }
  }
  return Error(404, "unknown control path or method");
}

ApiResponse ControlApi::Pay(const Args& args, const Json& body) {
  return store_->PaySession(args[0], body);
}

ApiResponse ControlApi::Complete(const Args& args, const Json& body) {
  return store_->CompleteOrder(args[0], body);
}

ApiResponse ControlApi::NextOutcome(const Args& args, const Json& body) {
  return store_->SetTokenOutcome(args[0], body);
}

ApiResponse ControlApi::CompleteRefund(const Args& args, const Json& body) {
  return store_->CompleteRefund(args[0], body);
}

ApiResponse ControlApi::RefundMode(const Args&, const Json& body) {
  return store_->SetRefundMode(body);
}

ApiResponse ControlApi::AdvanceClock(const Args&, const Json& body) {
  if (!body.contains("seconds") || !body["seconds"].is_number_integer()) {
    return Error(400, "seconds must be an integer");
  }
  store_->AdvanceClock(absl::Seconds(body["seconds"].get<int64_t>()));
  return {200, store_->ClockJson()};
}

ApiResponse ControlApi::Clock(const Args&, const Json&) {
  return {200, store_->ClockJson()};
}

ApiResponse ControlApi::Counters(const Args&, const Json&) {
  Json out = api_->Counters();
  out.update(http_->Counters());
  out["creates_by_trans_id"] = store_->creates_by_trans_id();
  out["charges_by_trans_id"] = store_->charges_by_trans_id();
  return {200, out};
}

ApiResponse ControlApi::TransId(const Args& args, const Json&) {
  absl::StatusOr<std::string> trans_id = PercentDecode(args[0]);
  if (!trans_id.ok()) return Error(400, "bad trans_id encoding");
  auto count = [&trans_id](const std::map<std::string, int64_t>& m) {
    auto it = m.find(*trans_id);
    return it == m.end() ? int64_t{0} : it->second;
  };
  int64_t sessions = count(store_->creates_by_trans_id());
  int64_t charges = count(store_->charges_by_trans_id());
  return {200, Json{{"trans_id", *trans_id},
                    {"requests", api_->Requests(*trans_id)},
                    {"create_requests", api_->CreateRequests(*trans_id)},
                    {"sessions_created", sessions},
                    {"charges_created", charges},
                    {"objects", sessions + charges}}};
}

ApiResponse ControlApi::Reset(const Args&, const Json&) {
  store_->Reset();
  store_->set_duplicate_policy(initial_duplicates_);
  api_->faults().Clear();
  api_->ResetCounters();
  http_->ResetCounters();
  webhooks_->Clear();
  return {200, Json{{"reset", true}}};
}

ApiResponse ControlApi::Redeliver(const Args& args, const Json&) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(args[0], &id) || !webhooks_->Redeliver(id)) {
    return Error(404, "no such webhook delivery");
  }
  return {200, Json{{"redelivered", id}}};
}

ApiResponse ControlApi::Webhooks(const Args&, const Json&) {
  return {200, webhooks_->List()};
}

ApiResponse ControlApi::SetFaults(const Args&, const Json& body) {
  absl::StatusOr<FaultConfig> c = ParseFaultConfig(body);
  if (!c.ok()) return Error(400, std::string(c.status().message()));
  api_->faults().Set(*c);
  return GetFaults({}, body);
}

ApiResponse ControlApi::GetFaults(const Args&, const Json&) {
  return {200, FaultConfigToJson(api_->faults().config())};
}

ApiResponse ControlApi::ClearFaults(const Args&, const Json& body) {
  api_->faults().Clear();
  return GetFaults({}, body);
}

ApiResponse ControlApi::SetDuplicates(const Args&, const Json& body) {
  absl::StatusOr<DuplicatePolicy> policy = ParseDuplicatePolicy(body);
  if (!policy.ok()) return Error(400, std::string(policy.status().message()));
  store_->set_duplicate_policy(*policy);
  return GetDuplicates({}, body);
}

ApiResponse ControlApi::GetDuplicates(const Args&, const Json&) {
  return {200, DuplicatePolicyToJson(store_->duplicate_policy())};
}

ApiResponse ControlApi::RestoreDuplicates(const Args&, const Json& body) {
  store_->set_duplicate_policy(initial_duplicates_);
  return GetDuplicates({}, body);
}

// {"public_key": PEM or bare Base64 SPKI} -> {"merchant_id", "index"}.
ApiResponse ControlApi::AddKey(const Args& args, const Json& body) {
  auto text = body.find("public_key");
  if (text == body.end() || !text->is_string()) {
    return Error(400, "public_key (PEM or Base64 SPKI) is required");
  }
  absl::StatusOr<RsaPublicKey> key =
      RsaPublicKey::Parse(text->get<std::string>());
  if (!key.ok()) return Error(400, std::string(key.status().message()));
  absl::StatusOr<int> index = store_->AddPublicKey(args[0], *std::move(key));
  if (!index.ok()) return Error(404, std::string(index.status().message()));
  return {200, Json{{"merchant_id", args[0]}, {"index", *index}}};
}

ApiResponse ControlApi::Keys(const Args& args, const Json&) {
  absl::StatusOr<Json> keys = store_->PublicKeysJson(args[0]);
  if (!keys.ok()) return Error(404, std::string(keys.status().message()));
  return {200, *std::move(keys)};
}

ApiResponse ControlApi::RetireKey(const Args& args, const Json&) {
  int index = -1;
  if (!absl::SimpleAtoi(args[1], &index)) return Error(400, "bad key index");
  if (absl::Status s = store_->RetirePublicKey(args[0], index); !s.ok()) {
    return Error(404, std::string(s.message()));
  }
  return Keys(args, Json());
}

}  // namespace payorch::sandbox
