#include "sandbox/checkout_page.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"

namespace payorch::sandbox {
namespace {

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// Decodes application/x-www-form-urlencoded into key -> value.
std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    for (std::string* s : {&kv.first, &kv.second}) {
      std::replace(s->begin(), s->end(), '+', ' ');
      absl::StatusOr<std::string> d = PercentDecode(*s);
      if (d.ok()) *s = *d;
    }
    out[kv.first] = kv.second;
  }
  return out;
}

HtmlPage Page(int status, const std::string& title, const std::string& inner) {
  return {status,
          absl::StrCat("<!doctype html><html><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width\">"
                       "<title>",
                       HtmlEscape(title), "</title></head><body><h1>",
                       HtmlEscape(title), "</h1>", inner, "</body></html>\n"),
          ""};
}

// 303 to `url` (an absolute URL validated when the session was created).
HtmlPage Redirect(const std::string& url) {
  HtmlPage p = Page(
      303, "Redirecting",
      absl::StrCat("<p><a href=\"", HtmlEscape(url), "\">Continue</a></p>"));
  p.location = url;
  return p;
}

std::string ErrorHtml(const std::string& error) {
  if (error.empty()) return "";
  return absl::StrCat("<p id=\"error\" role=\"alert\">", HtmlEscape(error),
                      "</p>");
}

// The card form of an open session, with the reason of the last failed
// attempt (if any) above it; the form always posts to the session's page.
HtmlPage CardForm(int status, const std::string& session_id, const Json& s,
                  const std::string& error) {
  std::string currency = s.value("currency", "");
  return Page(
      status, "PayKKa sandbox checkout",
      absl::StrCat(
          "<p>Amount: <span id=\"amount\">",
          HtmlEscape(FormatAmount(s.value("amount", int64_t{0}), currency)),
          "</span></p>", ErrorHtml(error), "<form method=\"post\" action=\"",
          "/checkout/", HtmlEscape(session_id),
          "\"><label>Card number <input name=\"card_no\" "
          "inputmode=\"numeric\" autocomplete=\"cc-number\" "
          "value=\"4242424242424242\"></label> <button type=\"submit\">Pay "
          "</button></form><p>Session <span id=\"session_id\">",
          HtmlEscape(session_id), "</span> (<span id=\"session_status\">",
          HtmlEscape(s.value("status", "")),
          "</span>)</p><p>Test cards: 4242424242424242 and "
          "5555555555554444 succeed, 4000000000000002 declines, "
          "4000000000003220 requires 3-D Secure.</p>"));
}

// A session that takes no more payments (COMPLETED, EXPIRED): its status
// and a way back to the shop.
HtmlPage ClosedSession(const Json& s, const std::string& error) {
  return Page(s.value("status", "") == "EXPIRED" ? 410 : 200, "Checkout closed",
              absl::StrCat("<p>This checkout is <span id=\"session_status\">",
                           HtmlEscape(s.value("status", "")), "</span>.</p>",
                           ErrorHtml(error), "<p><a id=\"return_url\" href=\"",
                           HtmlEscape(s.value("return_url", "")),
                           "\">Back to the shop</a></p>"));
}

// Where a shopper goes after a payment attempt answered `r` (200): on to
// return_url when paid, to the challenge when 3DS is pending, else back to
// the form with the decline.
HtmlPage AfterAttempt(Store& store, const std::string& session_id,
                      const ApiResponse& r) {
  std::optional<Json> s = store.SessionSummary(session_id);
  if (!s) return Page(404, "Session not found", "");
  std::string status = r.body.value("status", "");
  if (status == "SUCCESS" || status == "AUTHORIZED") {
    return Redirect(s->value("return_url", ""));
  }
  if (status == "PROCESSING" && r.body.contains("authentication_result")) {
    return Redirect(
        r.body["authentication_result"].value("authentication_url", ""));
  }
  return CardForm(
      200, session_id, *s,
      absl::StrCat(
          "Payment declined: ", r.body.value("error_description", "declined"),
          " (", r.body.value("error_code", ""), "). Try another card."));
}

HtmlPage ThreeDsPage(Store& store, Method method, const std::string& order_id,
                     const std::string& body) {
  if (method == Method::kPost) {
    auto form = ParseForm(body);
    std::string outcome =
        form.count("outcome") != 0 ? form["outcome"] : std::string("SUCCESS");
    ApiResponse r = store.CompleteOrder(order_id, Json{{"outcome", outcome}});
    if (r.http_status != 200) {
      return Page(r.http_status, "3-D Secure",
                  ErrorHtml(r.body.value("error", "error")));
    }
    if (r.body.value("status", "") == "FAILURE") {
      r.body["error_description"] = "3-D Secure authentication failed";
    }
    return AfterAttempt(store, r.body.value("session_id", ""), r);
  }
  return Page(
      200, "3-D Secure",
      absl::StrCat("<p>Order <span id=\"order_id\">", HtmlEscape(order_id),
                   "</span></p><form method=\"post\"><button "
                   "name=\"outcome\" value=\"SUCCESS\">Authenticate"
                   "</button> <button name=\"outcome\" "
                   "value=\"FAILURE\">Fail</button></form>"));
}

// The form's card number without spaces or dashes, or why it is refused.
std::optional<std::string> CardNumberError(const std::string& card) {
  if (card.empty()) return "Enter a card number.";
  if (card.size() < 12 || card.size() > 19 ||
      card.find_first_not_of("0123456789") != std::string::npos) {
    return "The card number must be 12 to 19 digits.";
  }
  int sum = 0;
  for (size_t i = 0; i < card.size(); ++i) {
    int d = card[card.size() - 1 - i] - '0';
    if (i % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  if (sum % 10 != 0) return "The card number is not valid.";
  return std::nullopt;
}

HtmlPage PayWithForm(Store& store, const std::string& session_id, const Json& s,
                     const std::string& body) {
  auto form = ParseForm(body);
  std::string card = form["card_no"];
  card.erase(std::remove_if(card.begin(), card.end(),
                            [](char c) { return c == ' ' || c == '-'; }),
             card.end());
  if (std::optional<std::string> e = CardNumberError(card)) {
    return CardForm(422, session_id, s, *e);
  }
  ApiResponse r = store.PaySession(session_id, Json{{"card_no", card}});
  if (r.http_status == 200) return AfterAttempt(store, session_id, r);
  std::string error = r.body.value("error", "payment refused");
  std::optional<Json> now = store.SessionSummary(session_id);
  if (now && now->value("status", "") != "PROCESSING") {
    return ClosedSession(*now, error);
  }
  return CardForm(r.http_status, session_id, now ? *now : s, error);
}

}  // namespace

int CurrencyExponent(const std::string& currency) {
  static const std::set<std::string> kZero = {
      "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
      "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"};
  static const std::set<std::string> kThree = {"BHD", "IQD", "JOD", "KWD",
                                               "LYD", "OMR", "TND"};
  if (kZero.count(currency) != 0) return 0;
  if (kThree.count(currency) != 0) return 3;
  if (currency == "CLF" || currency == "UYW") return 4;
  return 2;
}

std::string FormatAmount(int64_t amount, const std::string& currency) {
  int exponent = CurrencyExponent(currency);
  // Magnitude as unsigned: -INT64_MIN does not fit an int64_t.
  uint64_t magnitude = amount < 0 ? 0 - static_cast<uint64_t>(amount)
                                  : static_cast<uint64_t>(amount);
  std::string digits = absl::StrCat(magnitude);
  if (exponent > 0) {
    if (digits.size() <= static_cast<size_t>(exponent)) {
      digits.insert(0, exponent + 1 - digits.size(), '0');
    }
    digits.insert(digits.size() - exponent, ".");
  }
  return absl::StrCat(amount < 0 ? "-" : "", digits, " ", currency);
}

HtmlPage CheckoutPage(Store& store, Method method, const std::string& path,
                      const std::string& body) {
  std::vector<std::string> parts =
      absl::StrSplit(path.substr(strlen("/checkout/")), '/');
  if (parts.size() == 2 && parts[0] == "3ds") {
    return ThreeDsPage(store, method, parts[1], body);
  }
  if (parts.size() != 1) return Page(404, "Not found", "");
  std::optional<Json> s = store.SessionSummary(parts[0]);
  if (!s) return Page(404, "Session not found", "");
  if (method == Method::kPost) return PayWithForm(store, parts[0], *s, body);
  if (method != Method::kGet && method != Method::kHead) {
    return Page(405, "Method not allowed", "");
  }
  if (s->value("status", "") != "PROCESSING") return ClosedSession(*s, "");
  return CardForm(200, parts[0], *s, "");
}

}  // namespace payorch::sandbox
