#ifndef PAYORCH_SANDBOX_SERVER_H_
#define PAYORCH_SANDBOX_SERVER_H_

// The sandbox's HTTP side: one libevent loop thread (evhttp, keep-alive)
// owns every socket and all state; a small worker pool computes response
// signatures (~1 ms of RSA each) so the loop stays responsive while
// thousands of requests are held open by injected latency.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "sandbox/faults.h"
#include "sandbox/store.h"

namespace payorch::sandbox {

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  int listen_port = 0;  // 0 picks a free port
  size_t max_body_bytes = 1 << 20;
  absl::Duration webhook_retry_initial = absl::Seconds(1);
  int webhook_max_attempts = 8;
  bool sign_responses = true;
  // Variants of PayKKa's protocol, for testing payorch's per-environment
  // settings: where Query Session answers, and what a response signature
  // covers ("TIMESTAMP\nNONCE\nBODY" or, with sign_body_only, BODY alone).
  std::string query_session_path = "/v3/payment/acq/session/query";
  bool sign_body_only = false;
  // How long a "timeout after commit" request is held before the
  // connection is closed.
  absl::Duration max_hold = absl::Minutes(5);
  int signing_threads = 2;
  // An HTTPS listener beside the plain one when tls_listen_port >= 0 (0
  // picks a free port): PEM certificate chain and private key files.
  std::string tls_listen_host = "127.0.0.1";
  int tls_listen_port = -1;
  std::string tls_cert_file;
  std::string tls_key_file;
};

class Server {
 public:
  // Binds, starts the loop thread and serves. kInvalidArgument / kInternal
  // on a bad address or a libevent failure.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      ServerOptions options, StoreOptions store_options,
      std::vector<Merchant> merchants, RsaPrivateKey platform_key,
      FaultConfig faults);
  // Stops serving; open requests are dropped.
  ~Server();

  int port() const;
  // "127.0.0.1:<port>".
  std::string address() const;
  // The HTTPS listener's port, or -1 without one.
  int tls_port() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses the merchants config (README): {"merchants":[{"merchant_id",
// "app_id", "public_key_file" | "public_key", "client_key", "pci"}]}.
// Relative key paths are resolved against `base_dir`.
absl::StatusOr<std::vector<Merchant>> ParseMerchantsConfig(
    const std::string& text, const std::string& base_dir);

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_SERVER_H_
