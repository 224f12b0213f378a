#ifndef PAYORCH_SANDBOX_CHECKOUT_PAGE_H_
#define PAYORCH_SANDBOX_CHECKOUT_PAGE_H_

// The hosted checkout pages a shopper's browser sees (README "Test cards"),
// behaving as PayKKa's hosted checkout does:
// - GET /checkout/<session_id> shows the amount in major units with its
//   currency ("19.99 USD") and a card form;
// - POST pays with the form's card_no. A paid (or authorised) session sends
//   the shopper to the session's return_url (303, the URL unchanged); the 3DS
//   card sends the shopper to the challenge /checkout/3ds/<order_id>; a
//   decline, an empty or an invalid card number shows the form again with
//   the reason, so the shopper can retry;
// - /checkout/3ds/<order_id> completes the challenge: Authenticate goes on
//   to return_url, Fail back to the form.
// Pure HTML over the store.

#include <cstdint>
#include <string>

#include "sandbox/http_frontend.h"
#include "sandbox/store.h"

namespace payorch::sandbox {

struct HtmlPage {
  int http_status = 200;
  std::string html;
  // Non-empty: answer 303 See Other to this URL (html is the fallback body).
  std::string location;
};

// `path` starts with "/checkout/"; `body` is the urlencoded form of a POST.
HtmlPage CheckoutPage(Store& store, Method method, const std::string& path,
                      const std::string& body);

// ISO 4217 minor-unit digits of `currency`: 0 (JPY, KRW, ...), 3 (KWD, BHD,
// ...), 4 (CLF, UYW), otherwise 2.
int CurrencyExponent(const std::string& currency);
// `amount` minor units as major units with the currency: 1999 USD ->
// "19.99 USD", 1999 JPY -> "1999 JPY", 1999 KWD -> "1.999 KWD".
std::string FormatAmount(int64_t amount, const std::string& currency);

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_CHECKOUT_PAGE_H_
