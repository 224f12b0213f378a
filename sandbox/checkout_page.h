#ifndef PAYORCH_SANDBOX_CHECKOUT_PAGE_H_
#define PAYORCH_SANDBOX_CHECKOUT_PAGE_H_

// The hosted checkout pages a shopper's browser sees (README "Test cards"):
// GET /checkout/<session_id> shows the amount and a card form, POST pays
// with the form's card_no; /checkout/3ds/<order_id> completes a 3-D Secure
// challenge. Pure HTML over the store.

#include <string>

#include "sandbox/http_frontend.h"
#include "sandbox/store.h"

namespace payorch::sandbox {

struct HtmlPage {
  int http_status = 200;
  std::string html;
};

// `path` starts with "/checkout/"; `body` is the urlencoded form of a POST.
HtmlPage CheckoutPage(Store& store, Method method, const std::string& path,
                      const std::string& body);

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_CHECKOUT_PAGE_H_
