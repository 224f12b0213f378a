#include "sandbox/webhook_sender.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/signing.h"

namespace payorch::sandbox {
namespace {

// One POST in flight.
struct Call {
  WebhookSender* sender;
  int64_t delivery_id;
  evhttp_connection* conn;
};

// The parts of an http:// URL evhttp needs; false for anything else.
struct Target {
  std::string host, path_and_query;
  int port = 80;
};
bool ParseHttpUrl(const std::string& url, Target* out) {
  evhttp_uri* uri = evhttp_uri_parse(url.c_str());
  if (uri == nullptr) return false;
  const char* host = evhttp_uri_get_host(uri);
  const char* scheme = evhttp_uri_get_scheme(uri);
  bool ok =
      host != nullptr && scheme != nullptr && std::string(scheme) == "http";
  if (ok) {
    out->host = host;
    out->port = evhttp_uri_get_port(uri) < 0 ? 80 : evhttp_uri_get_port(uri);
    const char* path = evhttp_uri_get_path(uri);
    const char* query = evhttp_uri_get_query(uri);
    out->path_and_query = (path != nullptr && *path != '\0') ? path : "/";
    if (query != nullptr) absl::StrAppend(&out->path_and_query, "?", query);
  }
  evhttp_uri_free(uri);
  return ok;
}

}  // namespace

void WebhookSender::Send(std::vector<WebhookEvent> events) {
  for (WebhookEvent& ev : events) {
    Delivery d;
    d.id = next_id_++;
    d.url = ev.url;
    d.notify_type = ev.notify_type;
    d.order_id = ev.order_id;
    d.app_id = ev.app_id;
    d.body = DumpJson(ev.body);
    int64_t id = d.id;
    deliveries_[id] = std::move(d);
    Attempt(id);
  }
}

void WebhookSender::Attempt(int64_t id) {
  auto it = deliveries_.find(id);
  if (it == deliveries_.end() || shutting_down_) return;
  Delivery& d = it->second;
  ++d.attempts;
  Target target;
  if (!ParseHttpUrl(d.url, &target)) {
    d.last_error = "only http:// notify URLs are supported by the sandbox";
    return;
  }
  evhttp_connection* conn =
      evhttp_connection_base_new(loop_->base(), nullptr, target.host.c_str(),
                                 static_cast<uint16_t>(target.port));
  if (conn == nullptr) {
    d.last_error = "cannot create connection";
    return;
  }
  evhttp_connection_set_timeout(conn, 10);
  auto* call = new Call{this, id, conn};
  evhttp_request* req = evhttp_request_new(&WebhookSender::OnDone, call);
  evkeyvalq* h = evhttp_request_get_output_headers(req);
  std::string ts = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  std::string nonce = RandomHex(16);
  absl::StatusOr<std::string> sign = paykka::PaykkaSignatureHeader(
      platform_key_, paykka::PaykkaResponseStringToSign(ts, nonce, d.body));
  std::string host_header = absl::StrCat(target.host, ":", target.port);
  evhttp_add_header(h, "Host", host_header.c_str());
  evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
  evhttp_add_header(h, "x-paykka-appid", d.app_id.c_str());
  evhttp_add_header(h, "x-paykka-timestamp", ts.c_str());
  evhttp_add_header(h, "x-paykka-nonce", nonce.c_str());
  evhttp_add_header(h, "x-paykka-sign-alg", "SHA256_WITH_RSA");
  evhttp_add_header(h, "x-paykka-sign", sign.ok() ? sign->c_str() : "");
  evhttp_add_header(h, "Connection", "close");
  evbuffer_add(evhttp_request_get_output_buffer(req), d.body.data(),
               d.body.size());
  if (evhttp_make_request(conn, req, EVHTTP_REQ_POST,
                          target.path_and_query.c_str()) != 0) {
    // evhttp_make_request frees req on failure.
    delete call;
    evhttp_connection_free(conn);
    Finished(id, 0, "");
  }
}

void WebhookSender::OnDone(evhttp_request* req, void* arg) {
  auto* call = static_cast<Call*>(arg);
  WebhookSender* self = call->sender;
  int status = 0;
  std::string body;
  if (req != nullptr) {
    status = evhttp_request_get_response_code(req);
    evbuffer* in = evhttp_request_get_input_buffer(req);
    body.resize(evbuffer_get_length(in));
    if (!body.empty()) evbuffer_copyout(in, body.data(), body.size());
  }
  evhttp_connection* conn = call->conn;
  int64_t id = call->delivery_id;
  delete call;
  // The connection cannot be freed inside its own callback.
  self->loop_->Post([conn] { evhttp_connection_free(conn); });
  if (!self->shutting_down_) self->Finished(id, status, body);
}

void WebhookSender::Finished(int64_t id, int status, const std::string& body) {
  auto it = deliveries_.find(id);
  if (it == deliveries_.end()) return;
  Delivery& d = it->second;
  d.last_http_status = status;
  Json ack = Json::parse(body, nullptr, false);
  if (status == 200 && ack.is_object() &&
      ack.value("ret_code", "") == std::string("000000")) {
    d.delivered = true;
    d.last_error.clear();
    return;
  }
  d.last_error = status == 0 ? "connection failed" : "not acknowledged";
  if (d.attempts >= max_attempts_) return;
  absl::Duration delay = retry_initial_;
  for (int i = 1; i < d.attempts && delay < absl::Hours(1); ++i) delay *= 2;
  loop_->RunAfter(delay, [this, id] { Attempt(id); });
}

bool WebhookSender::Redeliver(int64_t id) {
  if (deliveries_.count(id) == 0) return false;
  Attempt(id);
  return true;
}

Json WebhookSender::List() const {
  Json list = Json::array();
  for (const auto& [id, d] : deliveries_) {
    list.push_back(Json{{"id", d.id},
                        {"url", d.url},
                        {"notify_type", d.notify_type},
                        {"order_id", d.order_id},
                        {"attempts", d.attempts},
                        {"last_http_status", d.last_http_status},
                        {"last_error", d.last_error},
                        {"delivered", d.delivered}});
  }
  return list;
}

}  // namespace payorch::sandbox
