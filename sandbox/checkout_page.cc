#include "sandbox/checkout_page.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
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
                       "<title>",
                       HtmlEscape(title), "</title></head><body><h1>",
                       HtmlEscape(title), "</h1>", inner, "</body></html>\n")};
}

std::string OrderHtml(const ApiResponse& r) {
  if (r.http_status != 200) {
    return absl::StrCat("<p id=\"error\">",
                        HtmlEscape(r.body.value("error", "error")), "</p>");
  }
  return absl::StrCat(
      "<p>Order <span id=\"order_id\">",
      HtmlEscape(r.body.value("order_id", "")), "</span>: <span id=\"status\">",
      HtmlEscape(r.body.value("status", "")), "</span> ",
      HtmlEscape(r.body.value("error_code", "")), " ",
      HtmlEscape(r.body.value("error_description", "")), "</p>");
}

HtmlPage ThreeDsPage(Store& store, Method method, const std::string& order_id,
                     const std::string& body) {
  if (method == Method::kPost) {
    auto form = ParseForm(body);
    ApiResponse r = store.CompleteOrder(
        order_id,
        Json{{"outcome", form.count("outcome") != 0 ? form["outcome"]
                                                    : std::string("SUCCESS")}});
    return Page(r.http_status, "3-D Secure", OrderHtml(r));
  }
  return Page(200, "3-D Secure",
              absl::StrCat("<p>Order ", HtmlEscape(order_id),
                           "</p><form method=\"post\"><button name=\"outcome\" "
                           "value=\"SUCCESS\">Authenticate</button><button "
                           "name=\"outcome\" value=\"FAILURE\">Fail</button>"
                           "</form>"));
}

HtmlPage PayWithForm(Store& store, const std::string& session_id,
                     const std::string& body) {
  auto form = ParseForm(body);
  std::string card = form["card_no"];
  card.erase(std::remove(card.begin(), card.end(), ' '), card.end());
  if (card.empty()) return Page(400, "Card number required", "");
  ApiResponse r = store.PaySession(session_id, Json{{"card_no", card}});
  std::string extra;
  if (r.http_status == 200 && r.body.contains("authentication_result")) {
    std::string url =
        r.body["authentication_result"].value("authentication_url", "");
    extra = absl::StrCat("<p><a id=\"authentication_url\" href=\"",
                         HtmlEscape(url), "\">Complete 3-D Secure</a></p>");
  }
  return Page(r.http_status, "Payment result", OrderHtml(r) + extra);
}

HtmlPage CardForm(const std::string& session_id, const Json& s) {
  return Page(
      200, "PayKKa sandbox checkout",
      absl::StrCat(
          "<p>Session <span id=\"session_id\">", HtmlEscape(session_id),
          "</span> (<span id=\"session_status\">",
          HtmlEscape(s["status"].get<std::string>()),
          "</span>)</p><p>Amount: <span id=\"amount\">",
          s["amount"].get<int64_t>(), "</span> <span id=\"currency\">",
          HtmlEscape(s["currency"].get<std::string>()),
          "</span> (minor units)</p>"
          "<form method=\"post\"><label>Card number <input name=\"card_no\" "
          "value=\"4242424242424242\"></label><button type=\"submit\">Pay"
          "</button></form><p>Test cards: 4242424242424242 and "
          "5555555555554444 succeed, 4000000000000002 declines, "
          "4000000000003220 requires 3-D Secure.</p>"));
}

}  // namespace

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
  if (method == Method::kPost) return PayWithForm(store, parts[0], body);
  if (method != Method::kGet && method != Method::kHead) {
    return Page(405, "Method not allowed", "");
  }
  return CardForm(parts[0], *s);
}

}  // namespace payorch::sandbox
