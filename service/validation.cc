#include "service/validation.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"

namespace payorch::service {
namespace {

// Active ISO 4217 codes of circulating currencies (list of 2025), sorted for
// binary search. Left out on purpose: fund codes (BOV, CHE, CHW, CLF, COU,
// MXV, USN, UYI, UYW), precious metals, SDR/bond units and the test codes
// (XAG, XAU, XBA-XBD, XDR, XPD, XPT, XSU, XTS, XUA, XXX), and retired codes
// (HRK, SLL, ZWL, ...): nobody pays in them.
constexpr const char* kCurrencies[] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM",
    "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN",
    "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD",
    "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL",
    "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP",
    "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER",
    "ZAR", "ZMW", "ZWG",
};

// Length in characters (UTF-8 code points): the proto comments' limits are
// in characters, and protobuf has already checked that strings are UTF-8.
size_t CharCount(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool HasControlOrSpace(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7F;
  });
}

bool AllOf(absl::string_view s, absl::string_view extra) {
  return std::all_of(s.begin(), s.end(), [extra](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           extra.find(c) != absl::string_view::npos;
  });
}

bool IsHost(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (host.front() == '[') {  // IPv6 literal
    return host.size() > 2 && host.back() == ']' &&
           std::all_of(host.begin() + 1, host.end() - 1, [](char c) {
             return absl::ascii_isxdigit(static_cast<unsigned char>(c)) ||
                    c == ':' || c == '.';
           });
  }
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' ||
        label.back() == '-' || !AllOf(label, "-_")) {
      return false;
    }
  }
  return true;
}

// Collects violations with their field paths.
class Violations {
 public:
  void Add(std::string field, std::string description) {
    list_.push_back({std::move(field), std::move(description)});
  }
  absl::Status ToStatus() && {
    if (list_.empty()) return absl::OkStatus();
    return InvalidFields(std::move(list_));
  }

  // A free-text field: at most `max` characters.
  void MaxLength(const std::string& field, absl::string_view value,
                 size_t max) {
    if (CharCount(value) > max) {
      Add(field, absl::StrCat("must be at most ", max, " characters"));
    }
  }

  void MerchantId(absl::string_view value) {
    if (value.empty()) {
      Add("merchant_id", "is required");
    } else if (value.size() > 32 || !AllOf(value, "_-")) {
      Add("merchant_id", "must be 1-32 characters of [A-Za-z0-9_-]");
    }
  }

  void TransId(const std::string& field, absl::string_view value) {
    if (value.empty()) {
      Add(field, "is required");
    } else if (value.size() > 64 || !AllOf(value, "._:-")) {
      Add(field, "must be 1-64 characters of [A-Za-z0-9._:-]");
    }
  }

  // A PayKKa identifier (order_id, session_id, token, agreement id).
  void PaykkaId(const std::string& field, absl::string_view value,
                bool required) {
    if (value.empty()) {
      if (required) Add(field, "is required");
    } else if (value.size() > 64 || !AllOf(value, "_-")) {
      Add(field, "must be 1-64 characters of [A-Za-z0-9_-]");
    }
  }

  void Amount(const std::string& field, int64_t amount) {
    if (amount <= 0) {
      Add(field, "must be greater than 0 (minor units of the currency)");
    } else if (amount > kMaxAmountMinor) {
      Add(field, absl::StrCat("must be at most ", kMaxAmountMinor));
    }
  }

  void Currency(const std::string& field, absl::string_view value) {
    if (value.empty()) {
      Add(field, "is required");
    } else if (!IsActiveCurrency(value)) {
      Add(field, "must be an active ISO 4217 alpha-3 code in upper case");
    }
  }

  void Url(const std::string& field, absl::string_view value, bool required) {
    if (value.empty()) {
      if (required) Add(field, "is required");
    } else if (!IsHttpUrl(value)) {
      Add(field, absl::StrCat("must be an absolute http(s) URL of at most ",
                              kMaxUrlLength, " characters"));
    }
  }

  void Email(const std::string& field, absl::string_view value) {
    if (value.empty()) return;
    if (CharCount(value) > 128) {
      Add(field, "must be at most 128 characters");
    } else if (HasControlOrSpace(value) ||
               value.find('@') == absl::string_view::npos ||
               value.front() == '@' || value.back() == '@') {
      Add(field, "must be an email address");
    }
  }

  template <typename IsValid>
  void Enum(const std::string& field, int value, IsValid is_valid,
            bool required) {
    if (!is_valid(value)) {
      Add(field, absl::StrCat("unknown value ", value));
    } else if (required && value == 0) {
      Add(field, "is required");
    }
  }

  void Address(const std::string& prefix, const v1::Address& a) {
    MaxLength(prefix + ".first_name", a.first_name(), 64);
    MaxLength(prefix + ".last_name", a.last_name(), 64);
    MaxLength(prefix + ".address_line1", a.address_line1(), 256);
    MaxLength(prefix + ".address_line2", a.address_line2(), 256);
    if (!a.country().empty() &&
        (a.country().size() != 2 || !absl::ascii_isupper(a.country()[0]) ||
         !absl::ascii_isupper(a.country()[1]))) {
      Add(prefix + ".country", "must be an ISO 3166-1 alpha-2 code (\"US\")");
    }
    MaxLength(prefix + ".state", a.state(), 64);
    MaxLength(prefix + ".city", a.city(), 64);
    MaxLength(prefix + ".postal_code", a.postal_code(), 32);
    Email(prefix + ".email", a.email());
    if (a.area_code().size() > 10 || !AllOf(a.area_code(), "+-")) {
      Add(prefix + ".area_code", "must be at most 10 characters of [0-9+-]");
    }
    if (a.phone_number().size() > 32 || !AllOf(a.phone_number(), "+-() ")) {
      Add(prefix + ".phone_number", "must be at most 32 characters of digits");
    }
  }

  void Customer(const v1::Customer& c) {
    MaxLength("customer.id", c.id(), 64);
    MaxLength("customer.order_ip", c.order_ip(), 64);
    MaxLength("customer.pay_ip", c.pay_ip(), 64);
    Email("customer.email", c.email());
    MaxLength("customer.registration_time", c.registration_time(), 64);
  }

  void Goods(const google::protobuf::RepeatedPtrField<v1::Goods>& goods) {
    if (goods.size() > kMaxGoods) {
      Add("goods", absl::StrCat("must have at most ", kMaxGoods, " items"));
    }
    for (int i = 0; i < goods.size() && i < kMaxGoods; ++i) {
      const v1::Goods& g = goods[i];
      const std::string p = absl::StrCat("goods[", i, "]");
      MaxLength(p + ".id", g.id(), 64);
      if (g.name().empty()) {
        Add(p + ".name", "is required");
      } else {
        MaxLength(p + ".name", g.name(), 256);
      }
      MaxLength(p + ".description", g.description(), 1024);
      MaxLength(p + ".category", g.category(), 64);
      MaxLength(p + ".brand", g.brand(), 64);
      Url(p + ".link", g.link(), false);
      if (g.price() < 0 || g.price() > kMaxAmountMinor) {
        Add(p + ".price",
            absl::StrCat("must be between 0 and ", kMaxAmountMinor));
      }
      if (g.quantity() < 1) Add(p + ".quantity", "must be at least 1");
      MaxLength(p + ".delivery_date", g.delivery_date(), 64);
      Url(p + ".picture_url", g.picture_url(), false);
    }
  }

  void PaymentMethod(absl::string_view value) {
    if (value.size() > 32 || !AllOf(value, "_")) {
      Add("payment.payment_method",
          "must be at most 32 characters of [A-Za-z0-9_]");
    }
  }

 private:
  std::vector<FieldViolation> list_;
};

bool IsBcp47ish(absl::string_view tag) {
  if (tag.empty() || tag.size() > 16) return false;
  std::vector<absl::string_view> parts =
      absl::StrSplit(tag, absl::ByAnyChar("-_"));
  if (parts[0].size() < 2 || parts[0].size() > 8 ||
      !std::all_of(parts[0].begin(), parts[0].end(),
                   [](char c) { return absl::ascii_isalpha(c); })) {
    return false;
  }
  return std::all_of(parts.begin() + 1, parts.end(), [](absl::string_view p) {
    return !p.empty() && p.size() <= 8 && AllOf(p, "");
  });
}

// google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
bool IsValidTimestamp(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= -62135596800 && ts.seconds() <= 253402300799 &&
         ts.nanos() >= 0 && ts.nanos() <= 999999999;
}

}  // namespace

bool IsActiveCurrency(absl::string_view code) {
  return std::binary_search(
      std::begin(kCurrencies), std::end(kCurrencies), code,
      [](absl::string_view a, absl::string_view b) { return a < b; });
}

bool IsHttpUrl(absl::string_view url) {
  if (url.empty() || url.size() > kMaxUrlLength || HasControlOrSpace(url)) {
    return false;
  }
  absl::string_view rest = url;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    rest.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    return false;
  }
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != absl::string_view::npos) return false;  // userinfo
  absl::string_view host = authority;
  size_t colon = authority.rfind(':');
  if (colon != absl::string_view::npos &&
      authority.find(']', colon) == absl::string_view::npos) {
    absl::string_view port = authority.substr(colon + 1);
    int port_number = 0;
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(),
                     [](char c) { return absl::ascii_isdigit(c); }) ||
        !absl::SimpleAtoi(port, &port_number) || port_number < 1 ||
        port_number > 65535) {
      return false;
    }
    host = authority.substr(0, colon);
  }
  return IsHost(host);
}

namespace {

// `now` unset: expire_time's window is not checked.
absl::Status CheckCheckout(const v1::CreateCheckoutRequest& r,
                           std::optional<absl::Time> now) {
  Violations v;
  v.MerchantId(r.merchant_id());
  v.TransId("trans_id", r.trans_id());
  v.Enum("payment_type", r.payment_type(), v1::PaymentType_IsValid, true);
  v.Enum("authorisation_type", r.authorisation_type(),
         v1::AuthorisationType_IsValid, false);
  v.Enum("capture_method", r.capture_method(), v1::CaptureMethod_IsValid,
         false);
  v.Amount("amount", r.amount());
  v.Currency("currency", r.currency());
  if (r.has_expire_time()) {
    const auto& ts = r.expire_time();
    if (!IsValidTimestamp(ts)) {
      v.Add("expire_time", "is not a valid timestamp");
    } else if (now.has_value()) {
      absl::Time t =
          absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
      if (t <= *now) {
        v.Add("expire_time", "must be in the future");
      } else if (t > *now + kMaxSessionLifetime) {
        v.Add("expire_time", "must be at most 24 hours ahead");
      }
    }
  }
  v.Enum("session_mode", r.session_mode(), v1::SessionMode_IsValid, true);
  if (!r.display_locale().empty() && !IsBcp47ish(r.display_locale())) {
    v.Add("display_locale",
          "must be a BCP 47 language tag (\"en-US\") of "
          "at most 16 characters");
  }
  v.Url("return_url", r.return_url(), true);
  v.Url("notify_url", r.notify_url(), false);

  const v1::PaymentOptions& p = r.payment();
  v.Enum("payment.token_usage", p.token_usage(), v1::TokenUsage_IsValid, false);
  v.MaxLength("payment.shopper_reference", p.shopper_reference(), 64);
  if (!p.token().empty()) {
    v.Add("payment.token", "must be empty on a checkout (use ChargeRecurring)");
  }
  v.PaymentMethod(p.payment_method());
  if (r.payment_type() == v1::PAYMENT_TYPE_RECURRING) {
    if (!p.store_payment_method()) {
      v.Add("payment.store_payment_method",
            "must be true for a first RECURRING payment");
    }
    if (p.token_usage() != v1::TOKEN_USAGE_SUBSCRIPTION &&
        v1::TokenUsage_IsValid(p.token_usage())) {
      v.Add("payment.token_usage", "must be SUBSCRIPTION for RECURRING");
    }
    if (p.shopper_reference().empty()) {
      v.Add("payment.shopper_reference", "is required for RECURRING");
    }
  } else if (p.store_payment_method()) {
    if (p.token_usage() == v1::TOKEN_USAGE_UNSPECIFIED) {
      v.Add("payment.token_usage", "is required when store_payment_method");
    }
    if (p.shopper_reference().empty()) {
      v.Add("payment.shopper_reference",
            "is required when store_payment_method");
    }
  }

  v.Goods(r.goods());
  v.Address("bill", r.bill());
  v.Address("shipping", r.shipping());
  v.Customer(r.customer());
  if (r.mit()) v.Add("mit", "must be false: a checkout is shopper-initiated");
  if (!r.recurring_agreement_id().empty()) {
    v.Add("recurring_agreement_id", "must be empty on a checkout");
  }
  v.Url("cancel_url", r.cancel_url(), false);
  return std::move(v).ToStatus();
}

}  // namespace

absl::Status ValidateCreateCheckout(const v1::CreateCheckoutRequest& r,
                                    absl::Time now) {
  return CheckCheckout(r, now);
}

absl::Status ValidateCreateCheckoutContent(const v1::CreateCheckoutRequest& r) {
  return CheckCheckout(r, std::nullopt);
}

absl::Status ValidateExpireTimeWindow(const v1::CreateCheckoutRequest& r,
                                      absl::Time now) {
  v1::CreateCheckoutRequest only_time;
  if (r.has_expire_time()) *only_time.mutable_expire_time() = r.expire_time();
  Violations v;
  absl::Status all = CheckCheckout(only_time, now);
  for (FieldViolation& f : FieldViolationsOf(all)) {
    if (f.field == "expire_time") v.Add(f.field, f.description);
  }
  return std::move(v).ToStatus();
}

absl::Status ValidateChargeRecurring(const v1::ChargeRecurringRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  v.TransId("trans_id", r.trans_id());
  v.Amount("amount", r.amount());
  v.Currency("currency", r.currency());
  v.PaykkaId("recurring_agreement_id", r.recurring_agreement_id(), true);

  const v1::PaymentOptions& p = r.payment();
  if (p.store_payment_method()) {
    v.Add("payment.store_payment_method", "must be false on ChargeRecurring");
  }
  if (!v1::TokenUsage_IsValid(p.token_usage())) {
    v.Add("payment.token_usage",
          absl::StrCat("unknown value ", p.token_usage()));
  } else if (p.token_usage() != v1::TOKEN_USAGE_UNSPECIFIED &&
             p.token_usage() != v1::TOKEN_USAGE_SUBSCRIPTION) {
    v.Add("payment.token_usage", "must be SUBSCRIPTION or unset");
  }
  if (p.shopper_reference().empty()) {
    v.Add("payment.shopper_reference", "is required");
  } else {
    v.MaxLength("payment.shopper_reference", p.shopper_reference(), 64);
  }
  v.PaykkaId("payment.token", p.token(), true);
  v.PaymentMethod(p.payment_method());

  if (!v1::PaymentType_IsValid(r.payment_type())) {
    v.Add("payment_type", absl::StrCat("unknown value ", r.payment_type()));
  } else if (r.payment_type() == v1::PAYMENT_TYPE_PURCHASE) {
    v.Add("payment_type", "must be RECURRING or unset");
  }
  v.Enum("authorisation_type", r.authorisation_type(),
         v1::AuthorisationType_IsValid, false);
  v.Enum("capture_method", r.capture_method(), v1::CaptureMethod_IsValid,
         false);
  if (r.has_mit() && !r.mit()) {
    v.Add("mit",
          "must be true or unset: a recurring charge is "
          "merchant-initiated");
  }
  v.Url("notify_url", r.notify_url(), false);
  v.Url("return_url", r.return_url(), false);
  v.Goods(r.goods());
  v.Address("bill", r.bill());
  v.Address("shipping", r.shipping());
  v.Customer(r.customer());
  return std::move(v).ToStatus();
}

absl::Status ValidateGetOrder(const v1::GetOrderRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  switch (r.lookup_case()) {
    case v1::GetOrderRequest::kOrderId:
      v.PaykkaId("order_id", r.order_id(), true);
      break;
    case v1::GetOrderRequest::kSessionId:
      v.PaykkaId("session_id", r.session_id(), true);
      break;
    case v1::GetOrderRequest::kTransId:
      v.TransId("trans_id", r.trans_id());
      break;
    case v1::GetOrderRequest::LOOKUP_NOT_SET:
      v.Add("lookup",
            "exactly one of order_id, session_id, trans_id is "
            "required");
      break;
  }
  return std::move(v).ToStatus();
}

absl::Status ValidateGetSessionStatus(const v1::GetSessionStatusRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  switch (r.lookup_case()) {
    case v1::GetSessionStatusRequest::kSessionId:
      v.PaykkaId("session_id", r.session_id(), true);
      break;
    case v1::GetSessionStatusRequest::kTransId:
      v.TransId("trans_id", r.trans_id());
      break;
    case v1::GetSessionStatusRequest::LOOKUP_NOT_SET:
      v.Add("lookup", "exactly one of session_id, trans_id is required");
      break;
  }
  return std::move(v).ToStatus();
}

}  // namespace payorch::service

// --- After the payment ---

namespace payorch::service {

absl::Status ValidateRefund(const v1::RefundRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  v.TransId("refund_trans_id", r.refund_trans_id());
  v.PaykkaId("order_id", r.order_id(), true);
  v.Amount("amount", r.amount());
  v.Currency("currency", r.currency());
  v.Enum("reason", r.reason(), v1::ReversalReason_IsValid, false);
  v.Url("notify_url", r.notify_url(), false);
  return std::move(v).ToStatus();
}

absl::Status ValidateGetRefund(const v1::GetRefundRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  switch (r.lookup_case()) {
    case v1::GetRefundRequest::kRefundTransId:
      v.TransId("refund_trans_id", r.refund_trans_id());
      break;
    case v1::GetRefundRequest::kRefundOrderId:
      v.PaykkaId("refund_order_id", r.refund_order_id(), true);
      break;
    case v1::GetRefundRequest::LOOKUP_NOT_SET:
      v.Add("lookup",
            "exactly one of refund_trans_id, refund_order_id is "
            "required");
      break;
  }
  return std::move(v).ToStatus();
}

absl::Status ValidateCapture(const v1::CaptureRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  v.TransId("request_id", r.request_id());
  v.PaykkaId("order_id", r.order_id(), true);
  v.Amount("amount", r.amount());
  v.Currency("currency", r.currency());
  return std::move(v).ToStatus();
}

absl::Status ValidateVoid(const v1::VoidRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  v.TransId("request_id", r.request_id());
  v.PaykkaId("order_id", r.order_id(), true);
  v.Enum("reason", r.reason(), v1::ReversalReason_IsValid, false);
  return std::move(v).ToStatus();
}

absl::Status ValidateCancelRecurring(const v1::CancelRecurringRequest& r) {
  Violations v;
  v.MerchantId(r.merchant_id());
  v.TransId("request_id", r.request_id());
  v.PaykkaId("recurring_agreement_id", r.recurring_agreement_id(), true);
  return std::move(v).ToStatus();
}

}  // namespace payorch::service
