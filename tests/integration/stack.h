#ifndef PAYORCH_TESTS_INTEGRATION_STACK_H_
#define PAYORCH_TESTS_INTEGRATION_STACK_H_

// A whole payorch deployment on loopback for integration tests: a real
// redis-server, the real paykka-sandbox and one or more real payorchd
// replicas, each a child process on a free port, stopped by PID. Keys are
// generated at start with the openssl CLI.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "payorch/v1/payorch.grpc.pb.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/tls.h"

namespace payorch::testing {

struct StackOptions {
  std::vector<std::string> sandbox_args;   // extra paykka-sandbox flags
  std::vector<std::string> payorchd_args;  // extra payorchd flags
  int replicas = 1;
  bool redis = true;  // false: payorchd --redis_url=memory
  // A 6-node Redis Cluster instead of one redis-server. Defaults to true
  // when PAYORCH_TEST_REDIS=cluster (CTest runs some suites both ways).
  bool redis_cluster = RedisClusterFromEnvironment();
  static bool RedisClusterFromEnvironment();
  bool verify_response_signatures = true;
  // Extra keys of the merchant's entry in payorchd's merchants.json (the
  // per-environment PayKKa settings, e.g. "query_session_path").
  nlohmann::json merchant_settings = nlohmann::json::object();
  // A restarted payorchd listens on the ports it had (as a pod behind a
  // static address list would), not on new free ones.
  bool keep_ports = false;
  // payorchd reads the merchant configuration and key through the layout of
  // a mounted Kubernetes Secret: secret/merchants.json and secret/merchant.pem
  // are symlinks into secret/..data, itself a symlink to a versioned
  // directory; PublishMerchantFiles swaps ..data by one rename, as the
  // kubelet does.
  bool secret_volume = false;
  // payorchd serves gRPC with mTLS (SharedMtlsCertificates()) and the caller
  // policy below; Channel()/Stub() connect as the "admin" caller. With
  // insecure_plaintext it runs --insecure_plaintext without a policy.
  bool insecure_plaintext = false;
  // The caller policy JSON; empty: DefaultCallerPolicy().
  std::string caller_policy;
  // payorchd reaches PayKKa over HTTPS (the sandbox's TLS listener, a test
  // CA trusted through --paykka_ca_file), and through an rtt-relay
  // emulating this round-trip time when it is positive. The control API
  // (sandbox_url) stays direct.
  bool paykka_https = false;
  absl::Duration paykka_rtt = absl::ZeroDuration();

  // Shorthand: payorchd flags and the number of replicas.
  static StackOptions Payorchd(std::vector<std::string> args,
                               int replicas = 1) {
    StackOptions o;
    o.payorchd_args = std::move(args);
    o.replicas = replicas;
    return o;
  }
};

class Stack {
 public:
  static absl::StatusOr<std::unique_ptr<Stack>> Start(
      StackOptions options = {});
  ~Stack();

  static constexpr const char* kMerchantId = "M100001";
  static constexpr const char* kAppId = "APP100001";
  static constexpr const char* kClientKey = "ck_test_100001";
  // A second configured merchant (its own app at the sandbox).
  static constexpr const char* kMerchantId2 = "M2";
  static constexpr const char* kAppId2 = "APP2";

  // admin: every merchant and RPC; checkout: kMerchantId only, no
  // ChargeRecurring.
  static std::string DefaultCallerPolicy();

  std::unique_ptr<payorch::v1::PaymentOrchestrator::Stub> Stub(
      int replica = 0) const;
  std::shared_ptr<grpc::Channel> Channel(int replica = 0) const;
  // A channel as caller `name` (a client certificate of
  // SharedMtlsCertificates()); "" presents no client certificate.
  std::shared_ptr<grpc::Channel> ChannelAs(const std::string& name,
                                           int replica = 0) const;
  // The channel credentials of caller `name` (mTLS; "" presents no client
  // certificate), plaintext with insecure_plaintext.
  std::shared_ptr<grpc::ChannelCredentials> CallerCredentials(
      const std::string& name = "admin") const;
  // The caller policy file payorchd watches (rewrite it to reload).
  std::string caller_policy_file() const { return dir_.File("policy.json"); }
  // The merchant configuration payorchd reads (--merchants_config), the text
  // it was last published with, and the merchant key (PKCS#8 PEM).
  std::string merchants_config() const;
  const std::string& merchants_json() const { return merchants_json_; }
  const std::string& merchant_key_pem() const { return merchant_key_pem_; }
  // Publishes a new version of the merchant configuration and key as an
  // operator would: each file written aside and renamed into place, or with
  // secret_volume a new versioned directory swapped in through ..data (the
  // previous one removed).
  absl::Status PublishMerchantFiles(const std::string& merchants_json,
                                    const std::string& key_pem);
  // A fresh merchant key (PKCS#8 PEM), not published; its public half is
  // registered at the sandbox for both merchants (POST .../public-keys),
  // whose key index it answers.
  absl::StatusOr<std::pair<std::string, int>> NewMerchantKey() const;
  // The plaintext health-only gRPC listener (--health_listen).
  std::string health_target(int replica = 0) const;
  std::string grpc_target(int replica = 0) const;
  std::string http_target(int replica = 0) const;     // metrics, health
  std::string webhook_target(int replica = 0) const;  // POST /webhooks/paykka
  const std::string& sandbox_url() const { return sandbox_url_; }
  // The base_url payorchd uses for PayKKa.
  const std::string& paykka_url() const { return paykka_url_; }
  pid_t payorchd_pid(int replica = 0) const;

  // The sandbox's control API (JSON in, JSON out). kInternal on HTTP != 2xx.
  absl::StatusOr<nlohmann::json> SandboxCall(
      const std::string& method, const std::string& path,
      const nlohmann::json& body = nullptr) const;
  absl::StatusOr<nlohmann::json> Pay(
      const std::string& session_id, const std::string& outcome,
      nlohmann::json extra = nlohmann::json::object()) const;
  absl::StatusOr<nlohmann::json> Counters() const;
  absl::Status SetFaults(nlohmann::json rules, int seed = 1) const;
  absl::Status ClearFaults() const;

  // payorchd replicas.
  absl::Status KillPayorchd(int replica, int signal);  // and wait for exit
  // (Re)start, on new ports unless keep_ports.
  absl::Status StartPayorchd(int replica);
  absl::StatusOr<int> PayorchdExitStatus(int replica, absl::Duration timeout);
  // Threads and resident memory (kB) of a replica, from /proc.
  int ThreadCount(int replica = 0) const;
  long RssKb(int replica = 0) const;
  // Lines payorchd wrote to stderr so far.
  std::string PayorchdLog(int replica = 0) const;

  // Redis outage simulation: stop (every node of a Cluster), and start again
  // on the same port(s).
  absl::Status StopRedis();
  absl::Status StartRedis();
  // Keys matching `pattern` on the server or on every Cluster node, one a
  // line.
  absl::StatusOr<std::string> RedisKeys(const std::string& pattern) const;
  RedisCluster* redis_cluster() const { return cluster_.get(); }
  // The single redis-server's port (0 with a Cluster or no Redis).
  int redis_port() const { return redis_ != nullptr ? redis_->port() : 0; }

  const TempDir& dir() const { return dir_; }

 private:
  Stack() = default;
  absl::Status StartSandbox();
  // paykka_url_ from the options: HTTPS and/or the relay.
  absl::Status SetUpPaykkaUrl();
  // payorchd's mTLS and caller-policy flags (or --insecure_plaintext).
  absl::Status AddCallerAuthFlags(std::vector<std::string>* argv) const;

  StackOptions options_;
  TempDir dir_;
  std::string sandbox_url_;
  std::string paykka_url_;
  std::string ca_file_;
  std::string merchants_json_;
  std::string merchant_key_pem_;
  int merchant_files_version_ = 0;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<Subprocess> sandbox_;
  std::unique_ptr<RttRelay> relay_;
  struct Replica {
    std::unique_ptr<Subprocess> process;
    std::string grpc_target;
    std::string http_target;
    std::string webhook_target;
    std::string health_target;
    std::string log_path;
  };
  std::vector<Replica> replicas_;
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_INTEGRATION_STACK_H_
