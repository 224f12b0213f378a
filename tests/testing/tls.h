#ifndef PAYORCH_TESTS_TESTING_TLS_H_
#define PAYORCH_TESTS_TESTING_TLS_H_

// TLS and network-latency helpers for tests and benchmarks against the
// sandbox's HTTPS listener.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/subprocess.h"

namespace payorch::testing {

// A throw-away CA and a server certificate for 127.0.0.1 / localhost
// (tests/testing/make_test_certs.sh), written into `dir`.
struct TestCertificates {
  std::string ca_file;    // trust this (CURLOPT_CAINFO, --paykka_ca_file)
  std::string cert_file;  // server chain (paykka-sandbox --tls-cert)
  std::string key_file;   // server key (paykka-sandbox --tls-key)
};
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

// mTLS material for payorchd's gRPC port (scripts/make_mtls_certs.sh),
// made once per test binary and shared by every Stack in it: a CA, a server
// certificate for 127.0.0.1, and one client certificate per caller below.
struct MtlsCertificates {
  std::string dir;
  std::string ca_file;
  std::string server_cert_file;
  std::string server_key_file;
  // "client-<name>.pem" / ".key" in `dir`.
  std::string ClientCert(const std::string& name) const;
  std::string ClientKey(const std::string& name) const;
};
// Callers: "admin" has the URI SAN kAdminIdentity; "checkout" only the
// subject CN "checkout".
inline constexpr const char* kAdminIdentity = "spiffe://payorch.test/admin";
inline constexpr const char* kCheckoutIdentity = "checkout";
absl::StatusOr<MtlsCertificates> SharedMtlsCertificates();

// The rtt-relay binary in front of `target_port` on 127.0.0.1, emulating
// `rtt`. Stopped by PID when destroyed.
class RttRelay {
 public:
  static absl::StatusOr<std::unique_ptr<RttRelay>> Start(int target_port,
                                                         absl::Duration rtt);
  int port() const { return port_; }

 private:
  RttRelay(std::unique_ptr<Subprocess> proc, int port)
      : proc_(std::move(proc)), port_(port) {}
  std::unique_ptr<Subprocess> proc_;
  int port_;
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_TESTING_TLS_H_
