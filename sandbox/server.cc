#include "sandbox/server.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/event_loop.h"
#include "sandbox/api_handler.h"
#include "sandbox/checkout_page.h"
#include "sandbox/control_api.h"
#include "sandbox/http_frontend.h"
#include "sandbox/webhook_sender.h"

namespace payorch::sandbox {

absl::StatusOr<std::vector<Merchant>> ParseMerchantsConfig(
    const std::string& text, const std::string& base_dir) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config is not a JSON object");
  }
  auto it = j.find("merchants");
  if (it == j.end() || !it->is_array()) {
    return absl::InvalidArgumentError("config needs a \"merchants\" array");
  }
  std::vector<Merchant> out;
  for (const Json& m : *it) {
    auto str = [&m](const char* k) -> std::string {
      auto f = m.find(k);
      return f != m.end() && f->is_string() ? f->get<std::string>() : "";
    };
    if (!m.is_object() || str("merchant_id").empty() || str("app_id").empty()) {
      return absl::InvalidArgumentError(
          "each merchant needs merchant_id and app_id");
    }
    std::string key_text = str("public_key");
    if (key_text.empty()) {
      std::string file = str("public_key_file");
      if (file.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("merchant ", str("merchant_id"),
                         " needs public_key or public_key_file"));
      }
      if (file[0] != '/' && !base_dir.empty()) file = base_dir + "/" + file;
      absl::StatusOr<std::string> read = ReadFile(file);
      if (!read.ok()) return read.status();
      key_text = *read;
    }
    absl::StatusOr<RsaPublicKey> key = RsaPublicKey::Parse(key_text);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "merchant ", str("merchant_id"), ": ", key.status().message()));
    }
    bool pci = false;
    if (auto p = m.find("pci"); p != m.end() && p->is_boolean()) {
      pci = p->get<bool>();
    }
    out.push_back(Merchant{str("merchant_id"),
                           str("app_id"),
                           str("client_key"),
                           {MerchantKey{*key}},
                           pci});
  }
  return out;
}

// --- server ---

// Routes each request: /sandbox/ to the control API, /checkout/ to the
// checkout pages, PayKKa's paths to the API handler; webhooks go out after
// anything that may have moved an order.
class Server::Impl {
 public:
  Impl(ServerOptions options, StoreOptions store_options,
       std::vector<Merchant> merchants, RsaPrivateKey platform_key,
       FaultConfig faults)
      : options_(std::move(options)),
        initial_duplicates_(store_options.duplicate_trans_id),
        store_(std::move(store_options), std::move(merchants)),
        platform_key_(std::move(platform_key)),
        initial_faults_(std::move(faults)) {}

  absl::Status Start();
  void Shutdown();
  int port() const { return http_ != nullptr ? http_->port() : 0; }
  int tls_port() const { return http_ != nullptr ? http_->tls_port() : -1; }

 private:
  void Route(const Request& req);
  void SendWebhooks() { webhooks_->Send(store_.TakeWebhookEvents()); }

  ServerOptions options_;
  DuplicatePolicy initial_duplicates_;
  Store store_;
  RsaPrivateKey platform_key_;
  FaultConfig initial_faults_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<HttpFrontend> http_;
  std::unique_ptr<WebhookSender> webhooks_;
  std::unique_ptr<ApiHandler> api_;
  std::unique_ptr<ControlApi> control_;
};

absl::Status Server::Impl::Start() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop =
      EventLoop::Start("sandbox-loop");
  if (!loop.ok()) return loop.status();
  loop_ = *std::move(loop);
  http_ = std::make_unique<HttpFrontend>(loop_.get(), options_, platform_key_);
  webhooks_ = std::make_unique<WebhookSender>(loop_.get(), platform_key_,
                                              options_.webhook_retry_initial,
                                              options_.webhook_max_attempts);
  api_ = std::make_unique<ApiHandler>(
      http_.get(), loop_.get(), &store_, options_.max_body_bytes,
      initial_faults_, [this] { SendWebhooks(); }, options_.query_session_path);
  control_ = std::make_unique<ControlApi>(&store_, api_.get(), http_.get(),
                                          webhooks_.get(), initial_duplicates_);
  if (absl::Status s = http_->LoadTls(); !s.ok()) return s;
  absl::Status status;
  absl::Notification done;
  loop_->Post([this, &status, &done] {
    status = http_->Listen([this](const Request& req) { Route(req); });
    store_.set_public_base_url(
        absl::StrCat("http://", options_.listen_host, ":", http_->port()));
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

void Server::Impl::Shutdown() {
  if (loop_ == nullptr) return;
  http_->StopSigning();  // finishes signing jobs; their replies are posted
  absl::Notification done;
  loop_->Post([this, &done] {
    webhooks_->Shutdown();
    http_->Shutdown();
    done.Notify();
  });
  done.WaitForNotification();
  loop_.reset();
}

void Server::Impl::Route(const Request& req) {
  if (absl::StartsWith(req.path, "/sandbox/")) {
    ApiResponse r = control_->Handle(req.method, req.path, req.body);
    http_->ReplyJson(req.id, r.http_status, r.body);
    SendWebhooks();
  } else if (absl::StartsWith(req.path, "/checkout/")) {
    HtmlPage page = CheckoutPage(store_, req.method, req.path, req.body);
    if (!page.location.empty()) {
      http_->ReplyRedirect(req.id, page.location, page.html);
    } else {
      http_->Reply(req.id, page.http_status, std::move(page.html),
                   "text/html; charset=utf-8");
    }
    SendWebhooks();
  } else if (api_->IsApiPath(req.path)) {
    api_->Handle(req);
  } else {
    http_->ReplyJson(req.id, 404,
                     PaykkaEnvelope("010000", "unknown path: " + req.path));
  }
}

// --- Server ---

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { impl_->Shutdown(); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    ServerOptions options, StoreOptions store_options,
    std::vector<Merchant> merchants, RsaPrivateKey platform_key,
    FaultConfig faults) {
  auto impl = std::make_unique<Impl>(
      std::move(options), std::move(store_options), std::move(merchants),
      std::move(platform_key), std::move(faults));
  absl::Status s = impl->Start();
  if (!s.ok()) {
    impl->Shutdown();
    return s;
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

int Server::port() const { return impl_->port(); }

int Server::tls_port() const { return impl_->tls_port(); }

std::string Server::address() const {
  return absl::StrCat("127.0.0.1:", impl_->port());
}

}  // namespace payorch::sandbox
