#include "sandbox/api_handler.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace payorch::sandbox {
namespace {

constexpr char kCreateSession[] = "/v3/payment/acq/session";
constexpr char kQueryTransaction[] = "/v3/payment/acq/query";
constexpr char kInitiateTransaction[] = "/v3/payment/acq";
constexpr char kCancelAgreement[] = "/v3/payment/acq/recurring/cancel";
constexpr char kRefund[] = "/v3/payment/acq/refund";
constexpr char kQueryRefund[] = "/v3/payment/acq/refund/query";
constexpr char kCapture[] = "/v3/payment/acq/capture";
constexpr char kVoid[] = "/v3/payment/acq/void";

int64_t CountOf(const std::map<std::string, int64_t>& m,
                const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

ApiHandler::ApiHandler(HttpFrontend* http, EventLoop* loop, Store* store,
                       size_t max_body_bytes, FaultConfig faults,
                       std::function<void()> committed,
                       std::string query_session_path)
    : http_(http),
      loop_(loop),
      store_(store),
      max_body_bytes_(max_body_bytes),
      committed_(std::move(committed)),
      query_session_path_(std::move(query_session_path)),
      auth_(store) {
  faults_.Set(std::move(faults));
}

bool ApiHandler::IsApiPath(const std::string& path) const {
  return path == kCreateSession || path == query_session_path_ ||
         path == kQueryTransaction || path == kInitiateTransaction ||
         path == kCancelAgreement || path == kRefund || path == kQueryRefund ||
         path == kCapture || path == kVoid;
}

void ApiHandler::Handle(const Request& req) {
  ++requests_by_endpoint_[req.path];
  http_->CountInFlight(req.id);
  if (!Admit(req)) return;
  CountTransId(req);
  FaultDecision fault = faults_.Decide(req.path, req.reused);
  const uint64_t id = req.id;
  const absl::Duration latency = fault.latency;
  calls_[id] = Call{req, std::move(fault)};
  if (latency > absl::ZeroDuration()) {
    loop_->RunAfter(latency, [this, id] { Process(id); });
  } else {
    Process(id);
  }
}

bool ApiHandler::Admit(const Request& req) {
  if (req.method != Method::kPost) {
    http_->ReplyJson(req.id, 405,
                     PaykkaEnvelope("010000", "method not allowed: use POST"));
    return false;
  }
  const std::string* ctype = req.Header("Content-Type");
  std::string ct = absl::AsciiStrToLower(ctype != nullptr ? *ctype : "");
  if (ct != "application/json" && !absl::StartsWith(ct, "application/json;")) {
    http_->ReplyJson(
        req.id, 415,
        PaykkaEnvelope("010000", "Content-Type must be application/json"));
    return false;
  }
  if (req.body.size() > max_body_bytes_) {
    http_->ReplyJson(
        req.id, 413,
        PaykkaEnvelope("010000", absl::StrCat("request body exceeds ",
                                              max_body_bytes_, " bytes")));
    return false;
  }
  return true;
}

void ApiHandler::CountTransId(const Request& req) {
  Json parsed = Json::parse(req.body, nullptr, false);
  if (!parsed.is_object()) return;
  auto t = parsed.find("trans_id");
  // A refund's own id counts like a trans_id (Refund creates).
  if (t == parsed.end()) t = parsed.find("refund_trans_id");
  if (t == parsed.end() || !t->is_string() ||
      t->get_ref<const std::string&>().empty()) {
    return;
  }
  const std::string& trans_id = t->get_ref<const std::string&>();
  ++requests_by_trans_id_[trans_id];
  if (req.path == kCreateSession || req.path == kInitiateTransaction ||
      req.path == kRefund) {
    ++create_requests_by_trans_id_[trans_id];
  }
}

void ApiHandler::Process(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call call = std::move(it->second);
  calls_.erase(it);
  if (!http_->IsOpen(id)) return;  // client went away
  const FaultDecision& f = call.fault;
  if (f.reset || f.close_before_commit) {
    http_->Close(id, f.reset);
    return;
  }
  if (f.http_status != 0) {
    http_->ReplyJson(
        id, f.http_status,
        f.http_status == 429
            ? PaykkaEnvelope("999429", "Request rate limit exceeded")
        : f.http_status >= 500 ? PaykkaEnvelope("999999", "system exception")
                               : PaykkaEnvelope("010000", "injected fault"));
    return;
  }
  if (f.proxy_status != 0 && !f.proxy_after_commit) {
    ReplyProxyPage(id, f.proxy_status);
    return;
  }
  ApiResponse r = Dispatch(call.request, f);
  committed_();
  ReplyCommitted(id, r, f);
}

// Replies to a request that reached PayKKa, applying the faults that act
// after the operation.
void ApiHandler::ReplyCommitted(uint64_t id, const ApiResponse& r,
                                const FaultDecision& f) {
  if (!http_->IsOpen(id)) return;
  if (f.close_after_commit) {
    http_->Close(id, false);
    return;
  }
  if (f.proxy_status != 0) {
    ReplyProxyPage(id, f.proxy_status);
    return;
  }
  if (f.timeout_after_commit) {
    http_->Hold(id);  // committed; the answer never comes
    return;
  }
  std::string body = DumpJson(r.body);
  if (f.malformed_json) {
    http_->Reply(id, 200, body.substr(0, body.size() / 2));
    return;
  }
  http_->Reply(id, r.http_status, std::move(body), kJsonContentType,
               f.bad_signature);
}

// An HTML error page as an nginx-style proxy or load balancer sends it: no
// envelope, unsigned.
void ApiHandler::ReplyProxyPage(uint64_t id, int status) {
  static const std::map<int, const char*> kReasons = {
      {404, "Not Found"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {425, "Too Early"},
      {429, "Too Many Requests"},
      {499, "Client Closed Request"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"}};
  auto it = kReasons.find(status);
  const char* reason = it != kReasons.end() ? it->second : "Error";
  std::string title = absl::StrCat(status, " ", reason);
  http_->ReplyUnsigned(
      id, status,
      absl::StrCat("<html>\r\n<head><title>", title,
                   "</title></head>\r\n<body>\r\n<center><h1>", title,
                   "</h1></center>\r\n<hr><center>nginx</center>\r\n"
                   "</body>\r\n</html>\r\n"),
      "text/html", reason);
}

ApiResponse ApiHandler::Dispatch(const Request& req, const FaultDecision& f) {
  const Merchant* merchant = nullptr;
  ApiResponse auth = auth_.Authenticate(req, &merchant);
  if (auth.http_status != 200) return auth;
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return {400,
            PaykkaEnvelope("010000",
                           "invalid parameter: body must be a JSON object")};
  }
  auto m = body.find("merchant_id");
  if (m == body.end() || !m->is_string() ||
      m->get_ref<const std::string&>().empty()) {
    return {400, PaykkaEnvelope("010000",
                                "invalid parameter: merchant_id is required")};
  }
  if (m->get<std::string>() != merchant->merchant_id) {
    return {401, PaykkaEnvelope("206005",
                                "merchant does not exist for this "
                                "x-paykka-appid")};
  }
  const std::string& path = req.path;
  if (path == kCreateSession) {
    return store_->CreateSession(*merchant, body, f.visibility_delay);
  }
  if (path == query_session_path_) return store_->QuerySession(*merchant, body);
  if (path == kQueryTransaction) {
    return store_->QueryTransaction(*merchant, body);
  }
  if (path == kInitiateTransaction) {
    return store_->InitiateTransaction(*merchant, body, f.visibility_delay);
  }
  if (path == kRefund) return store_->Refund(*merchant, body);
  if (path == kQueryRefund) return store_->QueryRefund(*merchant, body);
  if (path == kCapture) return store_->Capture(*merchant, body);
  if (path == kVoid) return store_->Void(*merchant, body);
  return store_->CancelAgreement(*merchant, body);
}

Json ApiHandler::Counters() const {
  return Json{{"requests_by_endpoint", requests_by_endpoint_},
              {"requests_by_trans_id", requests_by_trans_id_},
              {"create_requests_by_trans_id", create_requests_by_trans_id_}};
}

int64_t ApiHandler::CreateRequests(const std::string& trans_id) const {
  return CountOf(create_requests_by_trans_id_, trans_id);
}

int64_t ApiHandler::Requests(const std::string& trans_id) const {
  return CountOf(requests_by_trans_id_, trans_id);
}

void ApiHandler::ResetCounters() {
  requests_by_endpoint_.clear();
  requests_by_trans_id_.clear();
  create_requests_by_trans_id_.clear();
}

}  // namespace payorch::sandbox
