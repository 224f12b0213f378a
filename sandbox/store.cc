#include "sandbox/store.h"

#include <initializer_list>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace payorch::sandbox {
namespace {

constexpr char kSuccessCode[] = "000000";
constexpr char kInvalidCode[] = "010000";

ApiResponse Ok(Json data) {
  return {200, Json{{"ret_code", kSuccessCode},
                    {"ret_msg", "success"},
                    {"data", std::move(data)}}};
}

ApiResponse Bad(const std::string& msg) {
  return {400, Json{{"ret_code", kInvalidCode},
                    {"ret_msg", "invalid parameter: " + msg}}};
}

// A PayKKa transaction error code returned in the ret_code slot (docs/paykka.md
// §4 failure shape 1): HTTP 400, nothing created.
ApiResponse Rule(const char* code, const char* msg) {
  return {400, Json{{"ret_code", code}, {"ret_msg", msg}}};
}

ApiResponse OrderNotFound() {
  return {404,
          Json{{"ret_code", "206024"}, {"ret_msg", "the order doesn't exist"}}};
}

ApiResponse SessionNotFound() {
  return {404, Json{{"ret_code", "206011"},
                    {"ret_msg", "the session does not exist"}}};
}

ApiResponse ControlError(int status, const std::string& msg) {
  return {status, Json{{"error", msg}}};
}

// Reads and validates fields of one JSON object. Each method returns an error
// message naming the field, or nullopt. null counts as absent.
class Fields {
 public:
  Fields(const Json& j, std::string prefix)
      : j_(j), prefix_(std::move(prefix)) {}

  const Json* Get(const char* name) const {
    if (!j_.is_object()) return nullptr;
    auto it = j_.find(name);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::optional<std::string> Str(const char* name, bool required,
                                 size_t max_len, std::string* out) const {
    const Json* v = Get(name);
    if (v == nullptr) {
      if (required) return Name(name) + " is required";
      return std::nullopt;
    }
    if (!v->is_string()) return Name(name) + " must be a string";
    const std::string& s = v->get_ref<const std::string&>();
    if (s.empty() && required) return Name(name) + " is required";
    if (max_len > 0 && s.size() > max_len) {
      return absl::StrCat(Name(name), " must be at most ", max_len,
                          " characters");
    }
    *out = s;
    return std::nullopt;
  }

  std::optional<std::string> Enum(const char* name, bool required,
                                  std::initializer_list<const char*> allowed,
                                  std::string* out) const {
    std::string v;
    if (auto e = Str(name, required, 64, &v)) return e;
    if (v.empty()) return std::nullopt;
    for (const char* a : allowed) {
      if (v == a) {
        *out = v;
        return std::nullopt;
      }
    }
    return absl::StrCat(Name(name), " must be one of ",
                        absl::StrJoin(allowed, "|"));
  }

  std::optional<std::string> Bool(const char* name,
                                  std::optional<bool>* out) const {
    const Json* v = Get(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) return Name(name) + " must be a boolean";
    *out = v->get<bool>();
    return std::nullopt;
  }

  // A positive integer in minor units: a JSON integer or a digit string.
  std::optional<std::string> Amount(const char* name, int64_t* out) const {
    const Json* v = Get(name);
    std::string err = Name(name) + " must be a positive integer";
    if (v == nullptr) return Name(name) + " is required";
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u == 0 || u > static_cast<uint64_t>(INT64_MAX)) return err;
      *out = static_cast<int64_t>(u);
      return std::nullopt;
    }
    if (v->is_number_integer()) {
      int64_t i = v->get<int64_t>();
      if (i <= 0) return err;
      *out = i;
      return std::nullopt;
    }
    if (v->is_string()) {
      const std::string& s = v->get_ref<const std::string&>();
      if (s.empty() || s.size() > 18) return err;
      for (char c : s) {
        if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return err;
      }
      int64_t i = 0;
      if (!absl::SimpleAtoi(s, &i) || i <= 0) return err;
      *out = i;
      return std::nullopt;
    }
    return err;
  }

  std::optional<std::string> Object(const char* name, Json* out) const {
    const Json* v = Get(name);
    if (v == nullptr) {
      *out = Json::object();
      return std::nullopt;
    }
    if (!v->is_object()) return Name(name) + " must be an object";
    *out = *v;
    return std::nullopt;
  }

 private:
  std::string Name(const char* name) const { return prefix_ + name; }
  const Json& j_;
  std::string prefix_;
};

#define SANDBOX_CHECK_FIELD(expr) \
  do {                            \
    if (auto e_ = (expr)) {       \
      return Bad(*e_);            \
    }                             \
  } while (0)

std::optional<std::string> CheckCurrency(const std::string& c) {
  if (c.size() != 3) return "currency must be 3 upper-case letters";
  for (char ch : c) {
    if (ch < 'A' || ch > 'Z') return "currency must be 3 upper-case letters";
  }
  return std::nullopt;
}

std::optional<std::string> CheckUrl(const char* name, const std::string& u) {
  if (u.empty()) return std::nullopt;
  if (!absl::StartsWith(u, "http://") && !absl::StartsWith(u, "https://")) {
    return absl::StrCat(name, " must be an http(s) URL");
  }
  return std::nullopt;
}

// BANKCARD, BankCard, bank_card... all name the card method.
bool IsBankCard(const std::string& method) {
  std::string m = absl::AsciiStrToUpper(method);
  absl::StrReplaceAll({{"_", ""}}, &m);
  return m == "BANKCARD";
}

// Reads a control-path outcome: status plus optional error code/text.
std::optional<std::string> ReadOutcome(const Json& req,
                                       std::initializer_list<const char*> ok,
                                       std::string* status, std::string* code,
                                       std::string* desc) {
  Fields f(req, "");
  if (auto e = f.Enum("outcome", true, ok, status)) return e;
  if (auto e = f.Str("error_code", false, 16, code)) return e;
  if (auto e = f.Str("error_description", false, 256, desc)) return e;
  return std::nullopt;
}

}  // namespace

absl::StatusOr<DuplicateTransIdMode> ParseDuplicateMode(const std::string& s) {
  if (s == "reject") return DuplicateTransIdMode::kReject;
  if (s == "return_existing") return DuplicateTransIdMode::kReturnExisting;
  if (s == "create") return DuplicateTransIdMode::kCreate;
  return absl::InvalidArgumentError(
      "mode must be reject, return_existing or create");
}

absl::StatusOr<DuplicatePolicy> ParseDuplicatePolicy(const Json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError("body must be a JSON object");
  }
  DuplicatePolicy p;
  Fields f(j, "");
  std::string mode = "reject";
  for (auto e : {f.Str("mode", false, 32, &mode),
                 f.Str("ret_code", false, 32, &p.ret_code),
                 f.Str("ret_msg", false, 512, &p.ret_msg)}) {
    if (e) return absl::InvalidArgumentError(*e);
  }
  absl::StatusOr<DuplicateTransIdMode> m = ParseDuplicateMode(mode);
  if (!m.ok()) return m.status();
  p.mode = *m;
  if (const Json* s = f.Get("http_status")) {
    if (!s->is_number_integer() || s->get<int64_t>() < 200 ||
        s->get<int64_t>() > 599) {
      return absl::InvalidArgumentError(
          "http_status must be an integer in [200,599]");
    }
    p.http_status = s->get<int>();
  }
  return p;
}

Json DuplicatePolicyToJson(const DuplicatePolicy& p) {
  const char* mode = p.mode == DuplicateTransIdMode::kReject ? "reject"
                     : p.mode == DuplicateTransIdMode::kReturnExisting
                         ? "return_existing"
                         : "create";
  return Json{{"mode", mode},
              {"http_status", p.http_status},
              {"ret_code", p.ret_code},
              {"ret_msg", p.ret_msg}};
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S+00:00", t, absl::UTCTimeZone());
}

std::optional<absl::Time> ParseIsoTime(const std::string& text) {
  // %Ez takes "+08:00" and "Z"; %z takes "+0800".
  for (const char* fmt : {"%Y-%m-%dT%H:%M:%E*S%Ez", "%Y-%m-%dT%H:%M:%E*S%z"}) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(fmt, text, absl::UTCTimeZone(), &t, &err)) return t;
  }
  return std::nullopt;
}

Store::Store(StoreOptions options, std::vector<Merchant> merchants)
    : options_(std::move(options)), merchants_(std::move(merchants)) {}

const Merchant* Store::FindMerchantByAppId(const std::string& app_id) const {
  for (const Merchant& m : merchants_) {
    if (m.app_id == app_id) return &m;
  }
  return nullptr;
}

const Merchant* Store::FindMerchant(const std::string& merchant_id) const {
  for (const Merchant& m : merchants_) {
    if (m.merchant_id == merchant_id) return &m;
  }
  return nullptr;
}

absl::StatusOr<int> Store::AddPublicKey(const std::string& merchant_id,
                                        RsaPublicKey key) {
  for (Merchant& m : merchants_) {
    if (m.merchant_id != merchant_id) continue;
    m.keys.push_back(MerchantKey{std::move(key)});
    return static_cast<int>(m.keys.size()) - 1;
  }
  return absl::NotFoundError("unknown merchant_id " + merchant_id);
}

absl::Status Store::RetirePublicKey(const std::string& merchant_id, int index) {
  for (Merchant& m : merchants_) {
    if (m.merchant_id != merchant_id) continue;
    if (index < 0 || static_cast<size_t>(index) >= m.keys.size()) {
      return absl::NotFoundError("no key with that index");
    }
    m.keys[index].retired = true;
    return absl::OkStatus();
  }
  return absl::NotFoundError("unknown merchant_id " + merchant_id);
}

absl::StatusOr<Json> Store::PublicKeysJson(
    const std::string& merchant_id) const {
  const Merchant* m = FindMerchant(merchant_id);
  if (m == nullptr) return absl::NotFoundError("unknown merchant_id");
  Json keys = Json::array();
  for (size_t i = 0; i < m->keys.size(); ++i) {
    keys.push_back({{"index", i},
                    {"retired", m->keys[i].retired},
                    {"verified", m->keys[i].verified}});
  }
  return Json{{"merchant_id", merchant_id}, {"keys", std::move(keys)}};
}

void Store::NoteVerified(const Merchant& merchant, size_t index) {
  for (Merchant& m : merchants_) {
    if (&m == &merchant && index < m.keys.size()) ++m.keys[index].verified;
  }
}

Json Store::ClockJson() const {
  return Json{{"now", FormatRfc3339(Now())},
              {"offset_seconds", absl::ToInt64Seconds(clock_offset_)}};
}

std::string Store::NextId(const char* prefix) {
  // Date-like prefix plus a sequence: unique within a run, readable.
  ++id_seq_;
  return absl::StrCat(
      prefix, absl::FormatTime("%Y%m%d", absl::Now(), absl::UTCTimeZone()),
      absl::StrFormat("%08d", id_seq_));
}

ApiResponse Store::DuplicateRefusal() const {
  const DuplicatePolicy& p = options_.duplicate_trans_id;
  return {p.http_status,
          Json{{"ret_code", p.ret_code}, {"ret_msg", p.ret_msg}}};
}

bool Store::TransIdTaken(const std::string& merchant_id,
                         const std::string& trans_id) const {
  auto key = std::make_pair(merchant_id, trans_id);
  return session_by_trans_id_.count(key) > 0 ||
         order_by_trans_id_.count(key) > 0;
}

Store::Session* Store::FindSessionFor(const std::string& merchant_id,
                                      const std::string& session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second.merchant_id != merchant_id) {
    return nullptr;
  }
  return &it->second;
}

std::string Store::SessionStatus(const Session& s) const {
  if (s.completed) return "COMPLETED";
  if (Now() >= s.expire_time) return "EXPIRED";
  return "PROCESSING";
}

Json Store::SessionJson(const Session& s) const {
  Json j{{"session_id", s.id},
         {"trans_id", s.trans_id},
         {"merchant_id", s.merchant_id},
         {"status", SessionStatus(s)},
         {"session_url",
          absl::StrCat(options_.public_base_url, "/checkout/", s.id)},
         {"expire_time", FormatRfc3339(s.expire_time)},
         {"amount", s.amount},
         {"currency", s.currency},
         {"payment_type", s.payment_type},
         {"session_mode", s.session_mode}};
  if (!s.order_id.empty()) j["order_id"] = s.order_id;
  return j;
}

Json Store::OrderJson(const Order& o) const {
  Json j{{"merchant_id", o.merchant_id},
         {"trans_id", o.trans_id},
         {"order_id", o.id},
         {"status", o.status},
         {"authorisation_type", o.authorisation_type},
         {"capture_method", o.capture_method},
         {"payment_type", o.payment_type},
         {"amount", o.amount},
         {"currency", o.currency},
         {"error_code", o.error_code},
         {"error_description", o.error_description},
         {"payment", Json{{"payment_method", "BANKCARD"}}}};
  if (!o.session_id.empty()) j["session_id"] = o.session_id;
  if (o.pay_finish_time)
    j["pay_finish_time"] = FormatRfc3339(*o.pay_finish_time);
  if (!o.token.empty()) j["token"] = o.token;
  if (!o.agreement_id.empty()) j["recurring_agreement_id"] = o.agreement_id;
  if (!o.shopper_reference.empty()) {
    j["shopper_reference"] = o.shopper_reference;
  }
  if (o.card) {
    j["card_info"] = Json{{"bin", o.card->bin},
                          {"last4", o.card->last4},
                          {"card_brand", o.card->brand}};
  }
  if (o.pending_3ds) {
    j["authentication_result"] =
        Json{{"authentication_url",
              absl::StrCat(options_.public_base_url, "/checkout/3ds/", o.id)}};
  }
  // Only an uncaptured authorisation can be captured or voided; a capture
  // releases what it did not take.
  const int64_t uncaptured =
      o.status == "AUTHORIZED" ? o.authed - o.captured - o.voided : 0;
  j["balances"] =
      Json{{"authed_amount", o.authed},
           {"captured_amount", o.captured},
           {"able_to_capture_amount", uncaptured},
           {"voided_amount", o.voided},
           {"able_to_void_amount", uncaptured},
           {"refunded_amount", o.refunded},
           {"able_to_refund_amount", o.captured - o.refunded - o.refund_held}};
  return j;
}

Store::Order& Store::NewOrder() {
  std::string id = NextId("GW");
  Order& o = orders_[id];
  o.id = id;
  o.status = "PROCESSING";
  return o;
}

Store::Card Store::CardFromNumber(const std::string& card_no) {
  Card c;
  c.bin = card_no.substr(0, std::min<size_t>(6, card_no.size()));
  c.last4 = card_no.size() >= 4 ? card_no.substr(card_no.size() - 4) : card_no;
  if (absl::StartsWith(card_no, "4")) {
    c.brand = "VISA";
  } else if (absl::StartsWith(card_no, "5") || absl::StartsWith(card_no, "2")) {
    c.brand = "MASTERCARD";
  } else if (absl::StartsWith(card_no, "34") ||
             absl::StartsWith(card_no, "37")) {
    c.brand = "AMEX";
  } else {
    c.brand = "UNKNOWN";
  }
  return c;
}

// Test cards (README): 4000000000000002 declines, 4000000000003220 needs 3DS,
// anything else succeeds (AUTHORIZED under manual capture).
Store::Outcome Store::OutcomeForTestCard(const std::string& card_no,
                                         const std::string& capture_method) {
  if (card_no == "4000000000000002") {
    return {"FAILURE", "2099", "Invalid Card"};
  }
  if (card_no == "4000000000003220") return {"PROCESSING", "", ""};
  return {capture_method == "MANUAL" ? "AUTHORIZED" : "SUCCESS", "", ""};
}

void Store::ApplyOutcome(Order& o, const Outcome& out) {
  o.status = out.status;
  o.pending_3ds = out.status == "PROCESSING";
  if (out.status == "PROCESSING") {
    o.error_code = "";
    o.error_description = "";
    return;
  }
  o.pay_finish_time = Now();
  if (out.status == "SUCCESS" || out.status == "AUTHORIZED") {
    o.authed = o.amount;
    if (out.status == "SUCCESS") o.captured = o.amount;
  }
  if (out.status == "FAILURE") {
    o.error_code = out.error_code.empty() ? "2099" : out.error_code;
    o.error_description =
        out.error_description.empty() ? "Invalid Card" : out.error_description;
  } else {
    o.error_code = "0000";
    o.error_description = "request success";
    if (o.store_card && o.card && o.token.empty()) {
      Agreement a;
      a.id = NextId("RA");
      a.token = NextId("TK");
      a.merchant_id = o.merchant_id;
      a.shopper_reference = o.shopper_reference;
      a.token_usage = o.token_usage;
      a.card = *o.card;
      o.token = a.token;
      o.agreement_id = a.id;
      agreement_by_token_[a.token] = a.id;
      agreements_[a.id] = a;
    }
    if (!o.session_id.empty()) {
      auto it = sessions_.find(o.session_id);
      if (it != sessions_.end()) it->second.completed = true;
    }
  }
  if (!o.notify_url.empty()) {
    const Merchant* m = FindMerchant(o.merchant_id);
    WebhookEvent ev;
    ev.app_id = m != nullptr ? m->app_id : "";
    ev.url = o.notify_url;
    ev.order_id = o.id;
    ev.notify_type = out.status == "SUCCESS"      ? "PAYMENT.SUCCESS"
                     : out.status == "AUTHORIZED" ? "PAYMENT.AUTHORIZATION"
                                                  : "PAYMENT.FAILURE";
    ev.body = OrderJson(o);
    ev.body.erase("balances");
    ev.body["notify_type"] = ev.notify_type;
    if (!o.session_id.empty()) {
      auto it = sessions_.find(o.session_id);
      if (it != sessions_.end()) {
        ev.body["expire_time"] = FormatRfc3339(it->second.expire_time);
      }
    }
    webhooks_.push_back(std::move(ev));
  }
}

// Reads Create Session's fields into `s` (and `mit`); the error to answer,
// or nullopt.
std::optional<ApiResponse> Store::ReadSession(const Json& req, Session* s,
                                              std::optional<bool>* mit) const {
  Fields f(req, "");
  SANDBOX_CHECK_FIELD(f.Enum("payment_type", true, {"PURCHASE", "RECURRING"},
                             &s->payment_type));
  SANDBOX_CHECK_FIELD(f.Str("trans_id", true, 64, &s->trans_id));
  SANDBOX_CHECK_FIELD(f.Amount("amount", &s->amount));
  SANDBOX_CHECK_FIELD(f.Str("currency", true, 3 + 61, &s->currency));
  SANDBOX_CHECK_FIELD(CheckCurrency(s->currency));
  SANDBOX_CHECK_FIELD(f.Enum("session_mode", true,
                             {"HOSTED", "DROP_IN", "COMPONENT"},
                             &s->session_mode));
  SANDBOX_CHECK_FIELD(f.Str("return_url", true, 512, &s->return_url));
  SANDBOX_CHECK_FIELD(CheckUrl("return_url", s->return_url));
  SANDBOX_CHECK_FIELD(f.Str("notify_url", false, 512, &s->notify_url));
  SANDBOX_CHECK_FIELD(CheckUrl("notify_url", s->notify_url));
  s->capture_method = "AUTOMATIC";
  SANDBOX_CHECK_FIELD(f.Enum("capture_method", false, {"AUTOMATIC", "MANUAL"},
                             &s->capture_method));
  s->authorisation_type = "FINAL_AUTH";
  SANDBOX_CHECK_FIELD(f.Enum("authorisation_type", false,
                             {"FINAL_AUTH", "PRE_AUTH"},
                             &s->authorisation_type));
  std::string expire;
  SANDBOX_CHECK_FIELD(f.Str("expire_time", false, 64, &expire));
  if (auto e = ReadExpireTime(expire, &s->expire_time)) return e;
  Json payment;
  SANDBOX_CHECK_FIELD(f.Object("payment", &payment));
  Fields p(payment, "payment.");
  std::optional<bool> store;
  SANDBOX_CHECK_FIELD(p.Bool("store_payment_method", &store));
  SANDBOX_CHECK_FIELD(p.Enum(
      "token_usage", false, {"SUBSCRIPTION", "CARD_ON_FILE"}, &s->token_usage));
  SANDBOX_CHECK_FIELD(
      p.Str("shopper_reference", false, 64, &s->shopper_reference));
  SANDBOX_CHECK_FIELD(f.Bool("mit", mit));
  s->store_payment_method = store.value_or(false);
  return std::nullopt;
}

// expire_time: absent means the default lifetime; else in the future and at
// most 24 h ahead.
std::optional<ApiResponse> Store::ReadExpireTime(const std::string& expire,
                                                 absl::Time* out) const {
  absl::Time now = Now();
  if (expire.empty()) {
    *out = now + options_.default_session_ttl;
    return std::nullopt;
  }
  std::optional<absl::Time> t = ParseIsoTime(expire);
  if (!t) {
    return Bad(
        "expire_time must be ISO-8601 with an offset, e.g. "
        "2025-05-05T17:17:24+08:00");
  }
  if (*t <= now) return Bad("expire_time must be in the future");
  if (*t > now + absl::Hours(24)) {
    return Bad("expire_time must be at most 24 hours ahead");
  }
  *out = *t;
  return std::nullopt;
}

namespace {

// A session that stores the card: recurring rules 2012/2014/2008.
std::optional<ApiResponse> SessionStorageRules(const std::string& payment_type,
                                               bool store_payment_method,
                                               const std::string& shopper,
                                               const std::string& token_usage,
                                               std::optional<bool> mit) {
  if (payment_type == "RECURRING") {
    if (mit.value_or(false)) {
      return Rule("2012",
                  "first recurring payment: mit must be false or absent");
    }
    if (!store_payment_method) {
      return Rule("2014",
                  "first recurring payment requires storePaymentMethod=true");
    }
  } else if (!store_payment_method) {
    return std::nullopt;
  }
  if (shopper.empty()) return Rule("2008", "shopperReference is required");
  if (token_usage.empty()) return Bad("payment.token_usage is required");
  return std::nullopt;
}

}  // namespace

// A create with a trans_id the merchant used already: the answer under the
// duplicate policy, or nullopt to go ahead and create.
std::optional<ApiResponse> Store::Duplicate(const std::string& merchant_id,
                                            const std::string& trans_id,
                                            bool session) const {
  const DuplicateTransIdMode mode = options_.duplicate_trans_id.mode;
  if (mode == DuplicateTransIdMode::kCreate ||
      !TransIdTaken(merchant_id, trans_id)) {
    return std::nullopt;
  }
  if (mode == DuplicateTransIdMode::kReturnExisting) {
    auto key = std::make_pair(merchant_id, trans_id);
    const auto& index = session ? session_by_trans_id_ : order_by_trans_id_;
    auto it = index.find(key);
    if (it != index.end()) {
      return Ok(session ? SessionJson(sessions_.at(it->second))
                        : OrderJson(orders_.at(it->second)));
    }
  }
  return DuplicateRefusal();
}

ApiResponse Store::CreateSession(const Merchant& merchant, const Json& req,
                                 absl::Duration invisible_for) {
  Session s;
  std::optional<bool> mit;
  if (auto e = ReadSession(req, &s, &mit)) return *e;
  if (auto e = SessionStorageRules(s.payment_type, s.store_payment_method,
                                   s.shopper_reference, s.token_usage, mit)) {
    return *e;
  }
  if (auto e = Duplicate(merchant.merchant_id, s.trans_id, true)) return *e;
  s.id = NextId("CS");
  s.merchant_id = merchant.merchant_id;
  s.visible_at = absl::Now() + invisible_for;
  session_by_trans_id_[std::make_pair(merchant.merchant_id, s.trans_id)] = s.id;
  ++creates_by_trans_id_[s.trans_id];
  const Session& stored = sessions_[s.id] = std::move(s);
  Json data = SessionJson(stored);
  // Create Session answers with the session's identity only.
  Json out{{"session_id", data["session_id"]},
           {"session_url", data["session_url"]},
           {"expire_time", data["expire_time"]},
           {"trans_id", data["trans_id"]},
           {"merchant_id", data["merchant_id"]},
           {"status", "PROCESSING"}};
  return Ok(std::move(out));
}

ApiResponse Store::QuerySession(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  std::string session_id, trans_id;
  SANDBOX_CHECK_FIELD(f.Str("session_id", false, 64, &session_id));
  SANDBOX_CHECK_FIELD(f.Str("trans_id", false, 64, &trans_id));
  if (session_id.empty() && trans_id.empty()) {
    return Bad("session_id or trans_id is required");
  }
  Session* s = nullptr;
  if (!session_id.empty()) {
    s = FindSessionFor(merchant.merchant_id, session_id);
  } else {
    auto it = session_by_trans_id_.find(
        std::make_pair(merchant.merchant_id, trans_id));
    if (it != session_by_trans_id_.end()) s = &sessions_.at(it->second);
  }
  if (s == nullptr || !Visible(s->visible_at)) return SessionNotFound();
  return Ok(SessionJson(*s));
}

ApiResponse Store::QueryTransaction(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  std::string order_id, trans_id, session_id;
  SANDBOX_CHECK_FIELD(f.Str("order_id", false, 64, &order_id));
  SANDBOX_CHECK_FIELD(f.Str("trans_id", false, 64, &trans_id));
  SANDBOX_CHECK_FIELD(f.Str("session_id", false, 64, &session_id));
  if (order_id.empty() && trans_id.empty() && session_id.empty()) {
    return Bad("one of trans_id, order_id, session_id is required");
  }
  const Order* o = nullptr;
  if (!order_id.empty()) {
    auto it = orders_.find(order_id);
    if (it != orders_.end() && it->second.merchant_id == merchant.merchant_id) {
      o = &it->second;
    }
  } else if (!trans_id.empty()) {
    auto it =
        order_by_trans_id_.find(std::make_pair(merchant.merchant_id, trans_id));
    if (it != order_by_trans_id_.end()) o = &orders_.at(it->second);
  } else {
    Session* s = FindSessionFor(merchant.merchant_id, session_id);
    if (s != nullptr && !s->order_id.empty()) o = &orders_.at(s->order_id);
  }
  if (o == nullptr || !Visible(o->visible_at)) return OrderNotFound();
  return Ok(OrderJson(*o));
}

namespace {

// Reads Initiate Transaction's fields; the error to answer, or nullopt.
std::optional<ApiResponse> ReadInitiate(const Json& req, InitiateRequest* r) {
  Fields f(req, "");
  SANDBOX_CHECK_FIELD(f.Enum("payment_type", true, {"PURCHASE", "RECURRING"},
                             &r->payment_type));
  SANDBOX_CHECK_FIELD(f.Str("trans_id", true, 64, &r->trans_id));
  SANDBOX_CHECK_FIELD(f.Amount("amount", &r->amount));
  SANDBOX_CHECK_FIELD(f.Str("currency", true, 64, &r->currency));
  SANDBOX_CHECK_FIELD(CheckCurrency(r->currency));
  SANDBOX_CHECK_FIELD(f.Str("notify_url", false, 512, &r->notify_url));
  SANDBOX_CHECK_FIELD(CheckUrl("notify_url", r->notify_url));
  SANDBOX_CHECK_FIELD(f.Str("return_url", false, 512, &r->return_url));
  SANDBOX_CHECK_FIELD(CheckUrl("return_url", r->return_url));
  SANDBOX_CHECK_FIELD(f.Enum("capture_method", false, {"AUTOMATIC", "MANUAL"},
                             &r->capture_method));
  SANDBOX_CHECK_FIELD(f.Enum("authorisation_type", false,
                             {"FINAL_AUTH", "PRE_AUTH"},
                             &r->authorisation_type));
  SANDBOX_CHECK_FIELD(
      f.Str("recurring_agreement_id", false, 64, &r->agreement_id));
  SANDBOX_CHECK_FIELD(f.Bool("mit", &r->mit));
  Json payment;
  SANDBOX_CHECK_FIELD(f.Object("payment", &payment));
  Fields p(payment, "payment.");
  std::string method;
  SANDBOX_CHECK_FIELD(p.Str("payment_method", true, 64, &method));
  SANDBOX_CHECK_FIELD(p.Str("token", false, 64, &r->token));
  SANDBOX_CHECK_FIELD(
      p.Str("shopper_reference", false, 64, &r->shopper_reference));
  SANDBOX_CHECK_FIELD(p.Enum(
      "token_usage", false, {"SUBSCRIPTION", "CARD_ON_FILE"}, &r->token_usage));
  SANDBOX_CHECK_FIELD(p.Str("card_no", false, 19, &r->card_no));
  SANDBOX_CHECK_FIELD(p.Bool("store_payment_method", &r->store));
  if (!IsBankCard(method)) {
    return Rule("210001", "payment method not supported");
  }
  return std::nullopt;
}

// mit rules of a RECURRING payment: 2010, 2011, 2012.
std::optional<ApiResponse> MitRules(const InitiateRequest& r) {
  if (r.payment_type != "RECURRING") return std::nullopt;
  if (!r.mit.has_value()) {
    return Rule("2010", "mit is required in recurring scenarios");
  }
  if (r.subsequent() && !*r.mit) {
    return Rule("2011", "non-first recurring payment requires mit=true");
  }
  if (!r.subsequent() && *r.mit) {
    return Rule("2012", "first recurring payment: mit must be false or absent");
  }
  return std::nullopt;
}

// A customer-initiated payment with a plain card number (PCI merchants).
std::optional<ApiResponse> CardPaymentRules(const Merchant& merchant,
                                            const InitiateRequest& r) {
  if (r.card_no.empty()) {
    return Bad("payment.card_no or payment.token is required");
  }
  if (!merchant.pci) {
    return ApiResponse{400, Json{{"ret_code", "206017"},
                                 {"ret_msg", "PCI compliance insufficient"}}};
  }
  for (char c : r.card_no) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return Bad("payment.card_no must be digits");
    }
  }
  const bool store = r.store.value_or(false);
  if (r.payment_type == "RECURRING" && !store) {
    return Rule("2014",
                "first recurring payment requires storePaymentMethod=true");
  }
  if (store) {
    if (r.shopper_reference.empty()) {
      return Rule("2008", "shopperReference is required");
    }
    if (r.token_usage.empty()) return Bad("payment.token_usage is required");
  }
  if (r.return_url.empty()) return Bad("return_url is required");
  return std::nullopt;
}

}  // namespace

// A merchant-initiated payment on a stored card: finds the agreement.
std::optional<ApiResponse> Store::ResolveAgreement(
    const Merchant& merchant, InitiateRequest& r,
    const Agreement** agreement) const {
  if (r.shopper_reference.empty()) {
    return Rule("2008", "shopperReference is required");
  }
  if (r.agreement_id.empty()) {
    if (r.payment_type == "RECURRING") {
      return Bad("recurring_agreement_id is required");
    }
    auto t = agreement_by_token_.find(r.token);
    if (t == agreement_by_token_.end()) return Bad("payment.token is unknown");
    r.agreement_id = t->second;
  }
  auto it = agreements_.find(r.agreement_id);
  if (it == agreements_.end() ||
      it->second.merchant_id != merchant.merchant_id) {
    return Rule("2015", "recurring agreement does not exist");
  }
  *agreement = &it->second;
  if (!(*agreement)->active) {
    return Rule("2016", "recurring agreement is not active");
  }
  if (r.token.empty()) return Bad("payment.token is required");
  if (r.token != (*agreement)->token) {
    return Bad("payment.token does not belong to recurring_agreement_id");
  }
  if (r.shopper_reference != (*agreement)->shopper_reference) {
    return Bad("payment.shopper_reference does not match the agreement");
  }
  return std::nullopt;
}

// The outcome of a charge on a stored card: a forced outcome, the magic
// amount, or success.
Store::Outcome Store::AgreementOutcome(const Agreement& agreement,
                                       const InitiateRequest& r) {
  auto ov = token_overrides_.find(agreement.token);
  if (ov != token_overrides_.end()) {
    Outcome out = ov->second.outcome;
    if (ov->second.remaining > 0 && --ov->second.remaining == 0) {
      token_overrides_.erase(ov);
    }
    return out;
  }
  if (r.amount % 100 == 51) {
    // Magic amount (README): minor units ending in 51 decline.
    return {"FAILURE", "2099", "Invalid Card"};
  }
  return {r.capture_method == "MANUAL" ? "AUTHORIZED" : "SUCCESS", "", ""};
}

ApiResponse Store::InitiateTransaction(const Merchant& merchant,
                                       const Json& req,
                                       absl::Duration invisible_for) {
  InitiateRequest r;
  if (auto e = ReadInitiate(req, &r)) return *e;
  if (auto e = MitRules(r)) return *e;
  const Agreement* agreement = nullptr;
  if (r.subsequent()) {
    if (auto e = ResolveAgreement(merchant, r, &agreement)) return *e;
  } else if (auto e = CardPaymentRules(merchant, r)) {
    return *e;
  }
  if (auto e = Duplicate(merchant.merchant_id, r.trans_id, false)) return *e;

  Order& o = NewOrder();
  o.visible_at = absl::Now() + invisible_for;
  o.merchant_id = merchant.merchant_id;
  o.trans_id = r.trans_id;
  o.payment_type = r.payment_type;
  o.amount = r.amount;
  o.currency = r.currency;
  o.capture_method = r.capture_method;
  o.authorisation_type = r.authorisation_type;
  o.notify_url = r.notify_url;
  o.shopper_reference = r.shopper_reference;
  Outcome out;
  if (agreement != nullptr) {
    o.card = agreement->card;
    o.token = agreement->token;
    o.agreement_id = agreement->id;
    out = AgreementOutcome(*agreement, r);
  } else {
    o.card = CardFromNumber(r.card_no);
    o.store_card = r.store.value_or(false);
    o.token_usage = r.token_usage;
    out = OutcomeForTestCard(r.card_no, r.capture_method);
  }
  order_by_trans_id_[std::make_pair(merchant.merchant_id, r.trans_id)] = o.id;
  ++charges_by_trans_id_[r.trans_id];
  ApplyOutcome(o, out);
  return Ok(OrderJson(o));
}

ApiResponse Store::CancelAgreement(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  std::string agreement_id;
  SANDBOX_CHECK_FIELD(f.Str("recurring_agreement_id", true, 64, &agreement_id));
  auto it = agreements_.find(agreement_id);
  if (it == agreements_.end() ||
      it->second.merchant_id != merchant.merchant_id) {
    return Rule("2015", "recurring agreement does not exist");
  }
  it->second.active = false;
  return {200, Json{{"ret_code", kSuccessCode}, {"ret_msg", "success"}}};
}

ApiResponse Store::PaySession(const std::string& session_id, const Json& req) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return ControlError(404, "no such session");
  Session& s = it->second;
  std::string status = SessionStatus(s);
  if (status != "PROCESSING") {
    return ControlError(409, "session is " + status);
  }
  if (!s.order_id.empty() && orders_.at(s.order_id).status == "PROCESSING") {
    return ControlError(409, "session has a payment pending 3DS");
  }
  Outcome out;
  std::string card_no = "4242424242424242";
  if (req.is_object() && req.contains("card_no") && !req.contains("outcome")) {
    // Checkout page: the test card decides.
    Fields f(req, "");
    if (auto e = f.Str("card_no", true, 19, &card_no)) {
      return ControlError(400, *e);
    }
    out = OutcomeForTestCard(card_no, s.capture_method);
  } else {
    if (auto e =
            ReadOutcome(req, {"SUCCESS", "AUTHORIZED", "FAILURE", "PROCESSING"},
                        &out.status, &out.error_code, &out.error_description)) {
      return ControlError(400, *e);
    }
    Fields f(req, "");
    if (auto e = f.Str("card_no", false, 19, &card_no)) {
      return ControlError(400, *e);
    }
  }
  Order& o = NewOrder();
  o.merchant_id = s.merchant_id;
  o.trans_id = s.trans_id;
  o.session_id = s.id;
  o.payment_type = s.payment_type;
  o.amount = s.amount;
  o.currency = s.currency;
  o.capture_method = s.capture_method;
  o.authorisation_type = s.authorisation_type;
  o.notify_url = s.notify_url;
  o.shopper_reference = s.shopper_reference;
  o.store_card = s.store_payment_method;
  o.token_usage = s.token_usage;
  o.card = CardFromNumber(card_no);
  s.order_id = o.id;
  order_by_trans_id_[std::make_pair(s.merchant_id, s.trans_id)] = o.id;
  ApplyOutcome(o, out);
  return {200, OrderJson(o)};
}

ApiResponse Store::CompleteOrder(const std::string& order_id, const Json& req) {
  auto it = orders_.find(order_id);
  if (it == orders_.end()) return ControlError(404, "no such order");
  Order& o = it->second;
  if (o.status != "PROCESSING") {
    return ControlError(409, "order is already " + o.status);
  }
  Outcome out;
  if (auto e =
          ReadOutcome(req, {"SUCCESS", "AUTHORIZED", "FAILURE"}, &out.status,
                      &out.error_code, &out.error_description)) {
    return ControlError(400, *e);
  }
  ApplyOutcome(o, out);
  return {200, OrderJson(o)};
}

ApiResponse Store::SetTokenOutcome(const std::string& token, const Json& req) {
  if (agreement_by_token_.count(token) == 0) {
    return ControlError(404, "no such token");
  }
  TokenOverride ov;
  if (auto e = ReadOutcome(req, {"SUCCESS", "AUTHORIZED", "FAILURE"},
                           &ov.outcome.status, &ov.outcome.error_code,
                           &ov.outcome.error_description)) {
    return ControlError(400, *e);
  }
  if (req.contains("count")) {
    if (!req["count"].is_number_integer()) {
      return ControlError(400, "count must be an integer");
    }
    ov.remaining = req["count"].get<int>();
    if (ov.remaining == 0) {
      token_overrides_.erase(token);
      return {200, Json{{"token", token}, {"cleared", true}}};
    }
  }
  token_overrides_[token] = ov;
  return {200, Json{{"token", token},
                    {"outcome", ov.outcome.status},
                    {"count", ov.remaining}}};
}

std::optional<Json> Store::SessionSummary(const std::string& session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return std::nullopt;
  Json j = SessionJson(it->second);
  j["return_url"] = it->second.return_url;
  return j;
}

void Store::Reset() {
  clock_offset_ = absl::ZeroDuration();
  sessions_.clear();
  orders_.clear();
  agreements_.clear();
  agreement_by_token_.clear();
  token_overrides_.clear();
  session_by_trans_id_.clear();
  order_by_trans_id_.clear();
  creates_by_trans_id_.clear();
  charges_by_trans_id_.clear();
  webhooks_.clear();
  refunds_.clear();
  refund_by_trans_id_.clear();
  refund_review_ = false;
}

std::vector<WebhookEvent> Store::TakeWebhookEvents() {
  std::vector<WebhookEvent> out;
  out.swap(webhooks_);
  return out;
}

}  // namespace payorch::sandbox

// --- After the payment: refund, refund query, capture, void ---

namespace payorch::sandbox {

Store::Order* Store::FindOrderFor(const std::string& merchant_id,
                                  const std::string& order_id) {
  auto it = orders_.find(order_id);
  if (it == orders_.end() || it->second.merchant_id != merchant_id ||
      !Visible(it->second.visible_at)) {
    return nullptr;
  }
  return &it->second;
}

Json Store::RefundJson(const RefundRecord& r) const {
  Json j{{"merchant_id", r.merchant_id},
         {"refund_trans_id", r.refund_trans_id},
         {"refund_order_id", r.id},
         {"ori_order_id", r.order_id},
         {"status", r.status},
         {"refund_amount", r.amount},
         {"currency", r.currency},
         {"error_code", r.error_code},
         {"error_description", r.error_description}};
  if (!r.reason.empty()) j["reason"] = r.reason;
  return j;
}

void Store::EmitWebhook(const std::string& merchant_id, const std::string& url,
                        const std::string& object_id, const std::string& type,
                        Json body) {
  if (url.empty()) return;
  const Merchant* m = FindMerchant(merchant_id);
  WebhookEvent ev;
  ev.app_id = m != nullptr ? m->app_id : "";
  ev.url = url;
  ev.order_id = object_id;
  ev.notify_type = type;
  body["notify_type"] = type;
  ev.body = std::move(body);
  webhooks_.push_back(std::move(ev));
}

void Store::SettleRefund(RefundRecord& r, const Outcome& out) {
  Order& o = orders_.at(r.order_id);
  o.refund_held -= r.amount;
  r.status = out.status;
  if (out.status == "SUCCESS") {
    r.error_code = "0000";
    r.error_description = "request success";
    o.refunded += r.amount;
    o.status = o.refunded >= o.captured ? "REFUNDED" : "PARTIALLY_REFUNDED";
  } else {
    r.error_code = out.error_code.empty() ? "2099" : out.error_code;
    r.error_description = out.error_description.empty() ? "Refund declined"
                                                        : out.error_description;
  }
  // The refund webhook (docs/paykka.md 7): trans_id is the refund's.
  Json body = RefundJson(r);
  body["trans_id"] = r.refund_trans_id;
  body["order_id"] = r.order_id;
  body["amount"] = r.amount;
  EmitWebhook(r.merchant_id, r.notify_url, r.id,
              out.status == "SUCCESS" ? "REFUND.SUCCESS" : "REFUND.FAILURE",
              std::move(body));
}

ApiResponse Store::Refund(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  RefundRecord r;
  SANDBOX_CHECK_FIELD(f.Str("refund_trans_id", true, 64, &r.refund_trans_id));
  SANDBOX_CHECK_FIELD(f.Str("ori_order_id", true, 64, &r.order_id));
  SANDBOX_CHECK_FIELD(f.Amount("refund_amount", &r.amount));
  SANDBOX_CHECK_FIELD(f.Str("currency", true, 64, &r.currency));
  SANDBOX_CHECK_FIELD(CheckCurrency(r.currency));
  SANDBOX_CHECK_FIELD(
      f.Enum("reason", false,
             {"DUPLICATE", "FRAUDULENT", "REQUESTED_BY_CUSTOMER", "OTHER"},
             &r.reason));
  SANDBOX_CHECK_FIELD(f.Str("notify_url", false, 512, &r.notify_url));
  SANDBOX_CHECK_FIELD(CheckUrl("notify_url", r.notify_url));
  auto key = std::make_pair(merchant.merchant_id, r.refund_trans_id);
  if (refund_by_trans_id_.count(key) > 0) return DuplicateRefusal();
  Order* o = FindOrderFor(merchant.merchant_id, r.order_id);
  if (o == nullptr) return OrderNotFound();
  if (r.currency != o->currency) return Bad("currency is not the order's");
  if (r.amount > o->captured - o->refunded - o->refund_held) {
    return Bad("refund_amount exceeds the refundable amount");
  }
  r.id = NextId("RG");
  r.merchant_id = merchant.merchant_id;
  r.status = "REVIEWING";
  o->refund_held += r.amount;
  refund_by_trans_id_[key] = r.id;
  RefundRecord& stored = refunds_[r.id] = std::move(r);
  if (!refund_review_) SettleRefund(stored, {"SUCCESS", "", ""});
  return Ok(RefundJson(stored));
}

ApiResponse Store::QueryRefund(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  std::string trans_id, id;
  SANDBOX_CHECK_FIELD(f.Str("refund_trans_id", false, 64, &trans_id));
  SANDBOX_CHECK_FIELD(f.Str("refund_order_id", false, 64, &id));
  if (trans_id.empty() && id.empty()) {
    return Bad("one of refund_trans_id, refund_order_id is required");
  }
  if (id.empty()) {
    auto it = refund_by_trans_id_.find({merchant.merchant_id, trans_id});
    if (it != refund_by_trans_id_.end()) id = it->second;
  }
  auto it = refunds_.find(id);
  if (it == refunds_.end() || it->second.merchant_id != merchant.merchant_id) {
    return OrderNotFound();
  }
  return Ok(RefundJson(it->second));
}

ApiResponse Store::Capture(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  std::string order_id, currency;
  int64_t amount = 0;
  SANDBOX_CHECK_FIELD(f.Str("order_id", true, 64, &order_id));
  SANDBOX_CHECK_FIELD(f.Amount("amount", &amount));
  SANDBOX_CHECK_FIELD(f.Str("currency", true, 64, &currency));
  Order* o = FindOrderFor(merchant.merchant_id, order_id);
  if (o == nullptr) return OrderNotFound();
  if (o->status != "AUTHORIZED") return Bad("order is not capturable");
  if (currency != o->currency) return Bad("currency is not the order's");
  if (amount > o->authed - o->captured - o->voided) {
    return Bad("amount exceeds the capturable amount");
  }
  o->captured = amount;
  o->status = "SUCCESS";
  Json body = OrderJson(*o);
  body.erase("balances");
  EmitWebhook(o->merchant_id, o->notify_url, o->id, "PAYMENT.SUCCESS",
              std::move(body));
  return {200, Json{{"ret_code", kSuccessCode}, {"ret_msg", "success"}}};
}

ApiResponse Store::Void(const Merchant& merchant, const Json& req) {
  Fields f(req, "");
  std::string order_id, reason;
  SANDBOX_CHECK_FIELD(f.Str("order_id", true, 64, &order_id));
  SANDBOX_CHECK_FIELD(f.Enum(
      "reason", false,
      {"DUPLICATE", "FRAUDULENT", "REQUESTED_BY_CUSTOMER", "OTHER"}, &reason));
  Order* o = FindOrderFor(merchant.merchant_id, order_id);
  if (o == nullptr) return OrderNotFound();
  if (o->status != "AUTHORIZED") return Bad("order is not voidable");
  o->voided = o->authed - o->captured;
  o->status = "CANCELED";
  Json body = OrderJson(*o);
  body.erase("balances");
  EmitWebhook(o->merchant_id, o->notify_url, o->id, "PAYMENT.CANCELED",
              std::move(body));
  return {200, Json{{"ret_code", kSuccessCode}, {"ret_msg", "success"}}};
}

ApiResponse Store::CompleteRefund(const std::string& refund_order_id,
                                  const Json& req) {
  auto it = refunds_.find(refund_order_id);
  if (it == refunds_.end()) return ControlError(404, "no such refund");
  RefundRecord& r = it->second;
  if (r.status != "REVIEWING") {
    return ControlError(409, "refund is already " + r.status);
  }
  Outcome out;
  if (auto e = ReadOutcome(req, {"SUCCESS", "FAILURE"}, &out.status,
                           &out.error_code, &out.error_description)) {
    return ControlError(400, *e);
  }
  SettleRefund(r, out);
  return {200, RefundJson(r)};
}

ApiResponse Store::SetRefundMode(const Json& req) {
  Fields f(req, "");
  std::string mode;
  if (auto e = f.Enum("mode", true, {"success", "review"}, &mode)) {
    return ControlError(400, *e);
  }
  refund_review_ = mode == "review";
  return {200, Json{{"mode", mode}}};
}

}  // namespace payorch::sandbox
