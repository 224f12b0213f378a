#ifndef PAYORCH_SANDBOX_CONTROL_API_H_
#define PAYORCH_SANDBOX_CONTROL_API_H_

// The sandbox's own control API under /sandbox/ (README "Control API"; not
// PayKKa's, no signature): shopper simulation, the virtual clock, counters,
// faults, the duplicate trans_id policy, webhook records and reset. Plain
// JSON in and out; errors are {"error": "..."}. Loop thread only.

#include <string>
#include <vector>

#include "sandbox/api_handler.h"
#include "sandbox/http_frontend.h"
#include "sandbox/store.h"
#include "sandbox/webhook_sender.h"

namespace payorch::sandbox {

class ControlApi {
 public:
  ControlApi(Store* store, ApiHandler* api, HttpFrontend* http,
             WebhookSender* webhooks, DuplicatePolicy initial_duplicates)
      : store_(store),
        api_(api),
        http_(http),
        webhooks_(webhooks),
        initial_duplicates_(std::move(initial_duplicates)) {}

  // `path` starts with "/sandbox/".
  ApiResponse Handle(Method method, const std::string& path,
                     const std::string& body);

 private:
  using Args = std::vector<std::string>;  // the path's "*" segments
  struct Route {
    Method method;
    const char* pattern;  // e.g. "sessions/*/pay"
    ApiResponse (ControlApi::*handler)(const Args& args, const Json& body);
  };
  static const std::vector<Route>& Routes();

  ApiResponse Pay(const Args& args, const Json& body);
  ApiResponse Complete(const Args& args, const Json& body);
  ApiResponse NextOutcome(const Args& args, const Json& body);
  ApiResponse CompleteRefund(const Args& args, const Json& body);
  ApiResponse RefundMode(const Args& args, const Json& body);
  ApiResponse AdvanceClock(const Args& args, const Json& body);
  ApiResponse Clock(const Args& args, const Json& body);
  ApiResponse Counters(const Args& args, const Json& body);
  ApiResponse TransId(const Args& args, const Json& body);
  ApiResponse Reset(const Args& args, const Json& body);
  ApiResponse Webhooks(const Args& args, const Json& body);
  ApiResponse Redeliver(const Args& args, const Json& body);
  ApiResponse SetFaults(const Args& args, const Json& body);
  ApiResponse GetFaults(const Args& args, const Json& body);
  ApiResponse ClearFaults(const Args& args, const Json& body);
  ApiResponse SetDuplicates(const Args& args, const Json& body);
  ApiResponse GetDuplicates(const Args& args, const Json& body);
  ApiResponse RestoreDuplicates(const Args& args, const Json& body);
  ApiResponse AddKey(const Args& args, const Json& body);
  ApiResponse Keys(const Args& args, const Json& body);
  ApiResponse RetireKey(const Args& args, const Json& body);

  Store* store_;
  ApiHandler* api_;
  HttpFrontend* http_;
  WebhookSender* webhooks_;
  DuplicatePolicy initial_duplicates_;
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_CONTROL_API_H_
