#include "adapters/paykka/mapping.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "adapters/paykka/defaults.h"
#include "google/protobuf/generated_enum_reflection.h"

namespace payorch::paykka {
namespace {

// Request bodies keep insertion order so they read like PayKKa's examples.
using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

// --- payorch.v1 enums <-> PayKKa strings ---
// Every payorch.v1 enum value is named <TYPE PREFIX><PayKKa's text>
// (SESSION_MODE_DROP_IN is "DROP_IN"), with <TYPE PREFIX>UNSPECIFIED = 0, so
// both directions come from the generated descriptors.

// The value's PayKKa text; "" for UNSPECIFIED or a number the proto does not
// know (the field is then omitted).
template <typename E>
std::string PaykkaName(E value) {
  const google::protobuf::EnumDescriptor* d =
      google::protobuf::GetEnumDescriptor<E>();
  const google::protobuf::EnumValueDescriptor* v = d->FindValueByNumber(value);
  if (v == nullptr || v->number() == 0) return "";
  const std::string& unspecified = d->FindValueByNumber(0)->name();
  size_t prefix = unspecified.size() - std::string("UNSPECIFIED").size();
  return v->name().substr(prefix);
}

// The value whose PayKKa text is `text`: UNSPECIFIED when empty, `other`
// when payorch does not know it (the raw text is kept beside it).
template <typename E>
E FromPaykkaName(absl::string_view text, E other) {
  if (text.empty()) return static_cast<E>(0);
  const google::protobuf::EnumDescriptor* d =
      google::protobuf::GetEnumDescriptor<E>();
  const std::string& unspecified = d->FindValueByNumber(0)->name();
  std::string prefix = unspecified.substr(
      0, unspecified.size() - std::string("UNSPECIFIED").size());
  const google::protobuf::EnumValueDescriptor* v =
      d->FindValueByName(absl::StrCat(prefix, text));
  if (v == nullptr || v->number() == 0 || v->number() == other) return other;
  return static_cast<E>(v->number());
}

void PutIf(ojson& obj, const char* key, absl::string_view value) {
  if (!value.empty()) obj[key] = std::string(value);
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

ojson AddressJson(const v1::Address& a) {
  ojson o = ojson::object();
  PutIf(o, "first_name", a.first_name());
  PutIf(o, "last_name", a.last_name());
  PutIf(o, "address_line1", a.address_line1());
  PutIf(o, "address_line2", a.address_line2());
  PutIf(o, "country", a.country());
  PutIf(o, "state", a.state());
  PutIf(o, "city", a.city());
  PutIf(o, "postal_code", a.postal_code());
  PutIf(o, "email", a.email());
  PutIf(o, "area_code", a.area_code());
  PutIf(o, "phone_number", a.phone_number());
  return o;
}

ojson CustomerJson(const v1::Customer& c) {
  ojson o = ojson::object();
  PutIf(o, "id", c.id());
  PutIf(o, "order_ip", c.order_ip());
  PutIf(o, "pay_ip", c.pay_ip());
  PutIf(o, "email", c.email());
  PutIf(o, "registration_time", c.registration_time());
  return o;
}

ojson GoodsJson(const google::protobuf::RepeatedPtrField<v1::Goods>& goods) {
  ojson arr = ojson::array();
  for (const v1::Goods& g : goods) {
    ojson o = ojson::object();
    PutIf(o, "id", g.id());
    PutIf(o, "name", g.name());
    PutIf(o, "description", g.description());
    PutIf(o, "category", g.category());
    PutIf(o, "brand", g.brand());
    PutIf(o, "link", g.link());
    o["price"] = g.price();  // 0 is a valid (free) line item
    o["quantity"] = g.quantity();
    PutIf(o, "delivery_date", g.delivery_date());
    PutIf(o, "picture_url", g.picture_url());
    arr.push_back(std::move(o));
  }
  return arr;
}

// bill / shipping / customer / goods, shared by both mutating requests.
template <typename Request>
void PutParties(ojson& body, const Request& r) {
  if (r.goods_size() > 0) body["goods"] = GoodsJson(r.goods());
  if (r.has_bill()) {
    ojson bill = AddressJson(r.bill());
    if (!bill.empty()) body["bill"] = std::move(bill);
  }
  if (r.has_shipping()) {
    ojson shipping = AddressJson(r.shipping());
    if (!shipping.empty()) body["shipping"] = std::move(shipping);
  }
  if (r.has_customer()) {
    ojson customer = CustomerJson(r.customer());
    if (!customer.empty()) body["customer"] = std::move(customer);
  }
}

// --- Reading responses, without throwing ---

std::string Text(const json& obj, const char* key) {
  return FieldText(obj, key);
}

const json* Object(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_object()) return nullptr;
  return &*it;
}

// An amount: JSON integer, integral float or digit string. nullopt when
// absent or null; kInvalidArgument for anything else.
absl::StatusOr<std::optional<int64_t>> Amount(const json& obj,
                                              const char* key) {
  if (!obj.is_object()) return std::optional<int64_t>();
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer() && !it->is_number_unsigned()) {
    return std::optional<int64_t>(it->get<int64_t>());
  }
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::optional<int64_t>(static_cast<int64_t>(u));
    }
  }
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      return std::optional<int64_t>(static_cast<int64_t>(d));
    }
  }
  if (it->is_string()) {
    int64_t v = 0;
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty()) return std::optional<int64_t>();
    if (absl::SimpleAtoi(s, &v) &&
        s.find_first_not_of("-0123456789") == std::string::npos) {
      return std::optional<int64_t>(v);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("field ", key, " is not an integer amount"));
}

// Sets `*out` from a time field. An unparsable time is left unset rather
// than failing the whole answer: the rest of an order (its status above
// all) is worth more than one timestamp.
void MaybeSetTime(const json& obj, const char* key,
                  google::protobuf::Timestamp* out) {
  std::string text = Text(obj, key);
  if (text.empty()) return;
  absl::StatusOr<absl::Time> t = ParsePaykkaTime(text);
  if (t.ok()) ToProto(*t, out);
}

template <typename Fn>
auto CatchJson(Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed PayKKa data (json error ", e.id, ")"));
  }
}

}  // namespace

std::string FormatPaykkaTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S+00:00", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParsePaykkaTime(absl::string_view text) {
  // %Ez takes "+08:00" and "Z"; %z takes "+0800".
  static constexpr const char* kFormats[] = {
      "%Y-%m-%d%ET%H:%M:%E*S%Ez",
      "%Y-%m-%d%ET%H:%M:%E*S%z",
  };
  for (const char* format : kFormats) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(format, text, &t, &err)) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unparsable PayKKa time \"", text.substr(0, 40), "\""));
}

std::string CreateSessionBody(absl::string_view merchant_id,
                              const v1::CreateCheckoutRequest& r) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  PutIf(body, "payment_type", PaykkaName(r.payment_type()));
  PutIf(body, "authorisation_type", PaykkaName(r.authorisation_type()));
  PutIf(body, "capture_method", PaykkaName(r.capture_method()));
  PutIf(body, "trans_id", r.trans_id());
  body["amount"] = r.amount();
  PutIf(body, "currency", r.currency());
  PutIf(body, "session_mode", PaykkaName(r.session_mode()));
  if (r.has_expire_time()) {
    body["expire_time"] = FormatPaykkaTime(FromProto(r.expire_time()));
  }
  PutIf(body, "display_locale", r.display_locale());
  PutIf(body, "return_url", r.return_url());
  PutIf(body, "cancel_url", r.cancel_url());
  PutIf(body, "notify_url", r.notify_url());
  // The first payment of a recurring series is shopper-initiated; PayKKa
  // requires mit to be present in recurring scenarios (error 2010).
  if (r.payment_type() == v1::PAYMENT_TYPE_RECURRING || r.mit()) {
    body["mit"] = r.mit();
  }
  PutIf(body, "recurring_agreement_id", r.recurring_agreement_id());
  if (r.has_payment()) {
    const v1::PaymentOptions& p = r.payment();
    ojson payment = ojson::object();
    // A checkout normally lets the shopper choose the method, so the method
    // is only sent when given, or when storing a card (PayKKa requires
    // BANKCARD then: error 2013).
    std::string method = p.payment_method();
    if (method.empty() && p.store_payment_method()) {
      method = std::string(kBankCard);
    }
    PutIf(payment, "payment_method", method);
    if (p.store_payment_method()) payment["store_payment_method"] = true;
    PutIf(payment, "token_usage", PaykkaName(p.token_usage()));
    PutIf(payment, "shopper_reference", p.shopper_reference());
    PutIf(payment, "token", p.token());
    if (!payment.empty()) body["payment"] = std::move(payment);
  }
  PutParties(body, r);
  return body.dump();
}

std::string InitiateRecurringBody(absl::string_view merchant_id,
                                  const v1::ChargeRecurringRequest& r) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  body["payment_type"] = PaykkaName(kChargePaymentType);
  PutIf(body, "authorisation_type", PaykkaName(r.authorisation_type()));
  PutIf(body, "capture_method", PaykkaName(r.capture_method()));
  PutIf(body, "trans_id", r.trans_id());
  body["amount"] = r.amount();
  PutIf(body, "currency", r.currency());
  body["mit"] = kChargeIsMerchantInitiated;  // whatever the request said
  PutIf(body, "recurring_agreement_id", r.recurring_agreement_id());
  PutIf(body, "return_url", r.return_url());
  PutIf(body, "notify_url", r.notify_url());
  ojson payment = ojson::object();
  const v1::PaymentOptions& p = r.payment();
  payment["payment_method"] =
      p.payment_method().empty() ? std::string(kBankCard) : p.payment_method();
  PutIf(payment, "token", p.token());
  PutIf(payment, "shopper_reference", p.shopper_reference());
  std::string usage = PaykkaName(p.token_usage());
  payment["token_usage"] =
      usage.empty() ? PaykkaName(kDefaultChargeTokenUsage) : usage;
  body["payment"] = std::move(payment);
  PutParties(body, r);
  return body.dump();
}

std::string QueryTransactionBody(absl::string_view merchant_id,
                                 const OrderLookup& lookup) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  switch (lookup.kind) {
    case OrderLookup::Kind::kOrderId:
      body["order_id"] = lookup.value;
      break;
    case OrderLookup::Kind::kSessionId:
      body["session_id"] = lookup.value;
      break;
    case OrderLookup::Kind::kTransId:
      body["trans_id"] = lookup.value;
      break;
  }
  return body.dump();
}

std::string QuerySessionBody(absl::string_view merchant_id,
                             const SessionLookup& lookup) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  if (lookup.kind == SessionLookup::Kind::kSessionId) {
    body["session_id"] = lookup.value;
  } else {
    body["trans_id"] = lookup.value;
  }
  return body.dump();
}

std::string FieldText(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return "";
}

json EffectiveData(const json& body) {
  json out = json::object();
  if (!body.is_object()) return out;
  auto data = body.find("data");
  if (data != body.end() && data->is_object()) out = *data;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& key = it.key();
    if (key == "ret_code" || key == "ret_msg" || key == "data") continue;
    if (!out.contains(key)) out[key] = it.value();
  }
  return out;
}

v1::SessionStatus SessionStatusFromPaykka(absl::string_view text) {
  return FromPaykkaName(text, v1::SESSION_STATUS_OTHER);
}

v1::OrderStatus OrderStatusFromPaykka(absl::string_view text) {
  return FromPaykkaName(text, v1::ORDER_STATUS_OTHER);
}

absl::StatusOr<v1::CreateCheckoutResponse> ParseCreateSessionData(
    const json& data, const MerchantConfig& merchant,
    const v1::CreateCheckoutRequest& request) {
  return CatchJson([&]() -> absl::StatusOr<v1::CreateCheckoutResponse> {
    v1::CreateCheckoutResponse out;
    out.set_session_id(Text(data, "session_id"));
    if (out.session_id().empty()) {
      return absl::InvalidArgumentError("session_id missing");
    }
    out.set_client_key(merchant.client_key);
    out.set_session_url(Text(data, "session_url"));
    MaybeSetTime(data, "expire_time", out.mutable_expire_time());
    if (!out.has_expire_time() && request.has_expire_time()) {
      *out.mutable_expire_time() = request.expire_time();
    }
    std::string status = Text(data, "status");
    out.set_status_text(status);
    // A session PayKKa just created is open, even when it says nothing.
    out.set_status(status.empty() ? v1::SESSION_STATUS_PROCESSING
                                  : SessionStatusFromPaykka(status));
    std::string merchant_id = Text(data, "merchant_id");
    out.set_merchant_id(merchant_id.empty() ? merchant.merchant_id
                                            : merchant_id);
    std::string trans_id = Text(data, "trans_id");
    out.set_trans_id(trans_id.empty() ? request.trans_id() : trans_id);
    return out;
  });
}

absl::StatusOr<v1::GetSessionStatusResponse> ParseSessionData(
    const json& data) {
  return CatchJson([&]() -> absl::StatusOr<v1::GetSessionStatusResponse> {
    v1::GetSessionStatusResponse out;
    out.set_session_id(Text(data, "session_id"));
    out.set_trans_id(Text(data, "trans_id"));
    out.set_status_text(Text(data, "status"));
    if (out.session_id().empty() || out.status_text().empty()) {
      return absl::InvalidArgumentError("session_id or status missing");
    }
    out.set_status(SessionStatusFromPaykka(out.status_text()));
    MaybeSetTime(data, "expire_time", out.mutable_expire_time());
    out.set_session_url(Text(data, "session_url"));
    out.set_order_id(Text(data, "order_id"));
    absl::StatusOr<std::optional<int64_t>> amount = Amount(data, "amount");
    if (!amount.ok()) return amount.status();
    if (amount->has_value()) out.set_amount(**amount);
    out.set_currency(Text(data, "currency"));
    out.set_merchant_id(Text(data, "merchant_id"));
    return out;
  });
}

absl::StatusOr<v1::Order> ParseOrderData(const json& data) {
  return CatchJson([&]() -> absl::StatusOr<v1::Order> {
    v1::Order o;
    o.set_order_id(Text(data, "order_id"));
    o.set_status_text(Text(data, "status"));
    if (o.order_id().empty() && o.status_text().empty()) {
      return absl::InvalidArgumentError("order_id and status missing");
    }
    o.set_status(OrderStatusFromPaykka(o.status_text()));
    o.set_merchant_id(Text(data, "merchant_id"));
    o.set_trans_id(Text(data, "trans_id"));
    o.set_session_id(Text(data, "session_id"));
    o.set_payment_type(Text(data, "payment_type"));
    o.set_capture_method(Text(data, "capture_method"));
    o.set_authorisation_type(Text(data, "authorisation_type"));
    absl::StatusOr<std::optional<int64_t>> amount = Amount(data, "amount");
    if (!amount.ok()) return amount.status();
    if (amount->has_value()) o.set_amount(**amount);
    o.set_currency(Text(data, "currency"));
    o.set_error_code(Text(data, "error_code"));
    o.set_error_description(Text(data, "error_description"));
    MaybeSetTime(data, "pay_finish_time", o.mutable_pay_finish_time());
    o.set_token(Text(data, "token"));
    o.set_recurring_agreement_id(Text(data, "recurring_agreement_id"));
    o.set_shopper_reference(Text(data, "shopper_reference"));
    if (const json* payment = Object(data, "payment")) {
      o.set_payment_method(Text(*payment, "payment_method"));
      if (o.shopper_reference().empty()) {
        o.set_shopper_reference(Text(*payment, "shopper_reference"));
      }
      if (o.token().empty()) o.set_token(Text(*payment, "token"));
    }
    if (o.payment_method().empty()) {
      o.set_payment_method(Text(data, "payment_method"));
    }
    if (const json* card = Object(data, "card_info")) {
      o.mutable_card()->set_brand(Text(*card, "card_brand"));
      o.mutable_card()->set_last4(Text(*card, "last4"));
      o.mutable_card()->set_bin(Text(*card, "bin"));
    }
    if (const json* auth = Object(data, "authentication_result")) {
      o.set_authentication_url(Text(*auth, "authentication_url"));
    }
    if (const json* b = Object(data, "balances")) {
      struct Field {
        const char* key;
        void (v1::Balances::*set)(int64_t);
      };
      static constexpr Field kFields[] = {
          {"authed_amount", &v1::Balances::set_authed_amount},
          {"captured_amount", &v1::Balances::set_captured_amount},
          {"able_to_capture_amount", &v1::Balances::set_able_to_capture_amount},
          {"voided_amount", &v1::Balances::set_voided_amount},
          {"able_to_void_amount", &v1::Balances::set_able_to_void_amount},
          {"refunded_amount", &v1::Balances::set_refunded_amount},
          {"able_to_refund_amount", &v1::Balances::set_able_to_refund_amount},
      };
      v1::Balances* balances = o.mutable_balances();
      for (const Field& f : kFields) {
        absl::StatusOr<std::optional<int64_t>> v = Amount(*b, f.key);
        if (!v.ok()) return v.status();
        if (v->has_value()) (balances->*f.set)(**v);
      }
    }
    return o;
  });
}

}  // namespace payorch::paykka

namespace payorch::paykka {

std::string RefundBody(absl::string_view merchant_id,
                       const v1::RefundRequest& r) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  body["refund_trans_id"] = r.refund_trans_id();
  body["ori_order_id"] = r.order_id();
  body["refund_amount"] = r.amount();
  body["currency"] = r.currency();
  PutIf(body, "reason", PaykkaName(r.reason()));
  PutIf(body, "notify_url", r.notify_url());
  return body.dump();
}

std::string QueryRefundBody(absl::string_view merchant_id,
                            const RefundLookup& lookup) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  body[lookup.kind == RefundLookup::Kind::kRefundTransId ? "refund_trans_id"
                                                         : "refund_order_id"] =
      lookup.value;
  return body.dump();
}

std::string CaptureBody(absl::string_view merchant_id,
                        const v1::CaptureRequest& r) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  body["order_id"] = r.order_id();
  body["amount"] = r.amount();
  body["currency"] = r.currency();
  return body.dump();
}

std::string VoidBody(absl::string_view merchant_id, const v1::VoidRequest& r) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  body["order_id"] = r.order_id();
  PutIf(body, "reason", PaykkaName(r.reason()));
  return body.dump();
}

std::string CancelRecurringBody(absl::string_view merchant_id,
                                const v1::CancelRecurringRequest& r) {
  ojson body = ojson::object();
  body["merchant_id"] = std::string(merchant_id);
  body["recurring_agreement_id"] = r.recurring_agreement_id();
  return body.dump();
}

v1::RefundStatus RefundStatusFromPaykka(absl::string_view text) {
  return FromPaykkaName(text, v1::REFUND_STATUS_OTHER);
}

absl::StatusOr<v1::Refund> ParseRefundData(const json& data) {
  return CatchJson([&]() -> absl::StatusOr<v1::Refund> {
    v1::Refund r;
    r.set_refund_order_id(Text(data, "refund_order_id"));
    r.set_status_text(Text(data, "status"));
    if (r.refund_order_id().empty() && r.status_text().empty()) {
      return absl::InvalidArgumentError("refund_order_id and status missing");
    }
    r.set_status(RefundStatusFromPaykka(r.status_text()));
    r.set_merchant_id(Text(data, "merchant_id"));
    r.set_refund_trans_id(Text(data, "refund_trans_id"));
    r.set_order_id(Text(data, "ori_order_id"));
    if (r.order_id().empty()) r.set_order_id(Text(data, "order_id"));
    for (const char* key : {"refund_amount", "amount"}) {
      absl::StatusOr<std::optional<int64_t>> amount = Amount(data, key);
      if (!amount.ok()) return amount.status();
      if (amount->has_value()) {
        r.set_amount(**amount);
        break;
      }
    }
    r.set_currency(Text(data, "currency"));
    r.set_error_code(Text(data, "error_code"));
    r.set_error_description(Text(data, "error_description"));
    return r;
  });
}

absl::StatusOr<std::monostate> ParseNoData(const json&) {
  return std::monostate();
}

}  // namespace payorch::paykka
