// Caller authentication (mTLS) and authorisation (the caller policy) against
// real processes: redis-server, paykka-sandbox and payorchd.
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/stack.h"
#include "tests/integration/test_util.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/tls.h"

namespace payorch::testing {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// PayKKa API requests the sandbox has seen, all endpoints.
int64_t UpstreamRequests(const Stack& stack) {
  auto c = stack.Counters();
  if (!c.ok()) return -1;
  int64_t n = 0;
  for (const auto& [endpoint, count] : (*c)["requests_by_endpoint"].items())
    n += count.get<int64_t>();
  return n;
}

class CallerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto stack = Stack::Start();
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
  }

  grpc::Status CreateAs(const std::string& caller,
                        const v1::CreateCheckoutRequest& req,
                        v1::CreateCheckoutResponse* resp = nullptr) {
    v1::CreateCheckoutResponse ignored;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(10));
    return v1::PaymentOrchestrator::NewStub(stack_->ChannelAs(caller))
        ->CreateCheckout(&ctx, req, resp != nullptr ? resp : &ignored);
  }

  grpc::Status GetOrderAs(const std::string& caller,
                          const std::string& session_id,
                          v1::GetOrderResponse* resp) {
    v1::GetOrderRequest req;
    req.set_merchant_id(Stack::kMerchantId);
    req.set_session_id(session_id);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(10));
    return v1::PaymentOrchestrator::NewStub(stack_->ChannelAs(caller))
        ->GetOrder(&ctx, req, resp);
  }

  void WritePolicy(const std::string& text) {
    // Write a new file and rename it over the old one, as a ConfigMap
    // update does (atomic; a new inode).
    std::string tmp = stack_->caller_policy_file() + ".new";
    std::ofstream(tmp) << text;
    ASSERT_EQ(std::rename(tmp.c_str(), stack_->caller_policy_file().c_str()),
              0);
  }

  // Waits up to 10 s for `needle` in payorchd's log.
  bool WaitForLog(const std::string& needle) {
    absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      if (absl::StrContains(stack_->PayorchdLog(), needle)) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::unique_ptr<Stack> stack_;
};

TEST_F(CallerAuthTest, CallerWithoutCertificateIsRefused) {
  const int64_t before = UpstreamRequests(*stack_);
  // TLS without a client certificate: the handshake fails.
  grpc::Status st = CreateAs("", DropInCheckout(NewTransId("nocert")));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  // Plaintext: no TLS at all.
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  v1::CreateCheckoutResponse resp;
  grpc::Status plain =
      v1::PaymentOrchestrator::NewStub(
          grpc::CreateChannel(stack_->grpc_target(),
                              grpc::InsecureChannelCredentials()))
          ->CreateCheckout(&ctx, DropInCheckout(NewTransId("plain")), &resp);
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(UpstreamRequests(*stack_), before);
  auto keys = stack_->RedisKeys("*");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, "");
}

TEST_F(CallerAuthTest, CallerNotAllowedForMerchantIsDeniedWithoutAnyWork) {
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("m2"));
  req.set_merchant_id(Stack::kMerchantId2);
  const int64_t before = UpstreamRequests(*stack_);
  ASSERT_GE(before, 0);
  grpc::Status st = CreateAs("checkout", req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ReasonOf(st), "CALLER_NOT_AUTHORIZED");
  EXPECT_EQ(UpstreamRequests(*stack_), before);  // 0 upstream calls
  auto keys = stack_->RedisKeys("*");            // 0 Redis writes
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, "");
  // The same request from a caller allowed M2 goes through.
  EXPECT_TRUE(CreateAs("admin", req).ok());
  EXPECT_GT(UpstreamRequests(*stack_), before);
  // Identity in the request log and as a bounded metrics label.
  std::string log = stack_->PayorchdLog();
  EXPECT_TRUE(absl::StrContains(log, "\"caller\":\"checkout\""));
  EXPECT_TRUE(
      absl::StrContains(log, "\"caller\":\"spiffe://payorch.test/admin\""));
  auto metrics =
      RunCommand("curl -sf http://" + stack_->http_target() + "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_TRUE(absl::StrContains(*metrics, "caller=\"checkout\""));
  EXPECT_TRUE(absl::StrContains(*metrics, "reason=\"CALLER_NOT_AUTHORIZED\""));
}

TEST_F(CallerAuthTest, CallerNotAllowedToChargeSeesNoStoredCard) {
  v1::CreateCheckoutResponse created;
  ASSERT_TRUE(CreateAs("admin",
                       RecurringCheckout(NewTransId("first"), NewTransId("sh")),
                       &created)
                  .ok());
  ASSERT_TRUE(stack_->Pay(created.session_id(), "SUCCESS").ok());
  v1::GetOrderResponse billing, checkout;
  ASSERT_TRUE(GetOrderAs("admin", created.session_id(), &billing).ok());
  EXPECT_TRUE(absl::StartsWith(billing.order().token(), "TK"));
  EXPECT_TRUE(absl::StartsWith(billing.order().recurring_agreement_id(), "RA"));
  grpc::Status st = GetOrderAs("checkout", created.session_id(), &checkout);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(checkout.order().order_id(), billing.order().order_id());
  EXPECT_EQ(checkout.order().token(), "");
  EXPECT_EQ(checkout.order().recurring_agreement_id(), "");
  // And ChargeRecurring itself is denied to it.
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(10));
  v1::ChargeRecurringResponse charged;
  st = v1::PaymentOrchestrator::NewStub(stack_->ChannelAs("checkout"))
           ->ChargeRecurring(&ctx, Charge(NewTransId("c"), billing.order()),
                             &charged);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(CallerAuthTest, PolicyReloadsAndAnInvalidOneIsRejected) {
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("reload"));
  req.set_merchant_id(Stack::kMerchantId2);
  ASSERT_EQ(CreateAs("checkout", req).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  nlohmann::json policy = nlohmann::json::parse(Stack::DefaultCallerPolicy());
  policy["callers"][1]["merchants"].push_back(Stack::kMerchantId2);
  WritePolicy(policy.dump());
  ASSERT_TRUE(WaitForLog("caller policy reloaded")) << stack_->PayorchdLog();
  grpc::Status st = CreateAs("checkout", req);
  EXPECT_TRUE(st.ok()) << st.error_message();

  // An invalid policy (unknown RPC) is rejected; the previous one serves.
  policy["callers"][1]["methods"].push_back("RefundEverything");
  WritePolicy(policy.dump());
  ASSERT_TRUE(WaitForLog("caller policy rejected")) << stack_->PayorchdLog();
  EXPECT_TRUE(absl::StrContains(stack_->PayorchdLog(), "RefundEverything"));
  req.set_trans_id(NewTransId("after"));
  st = CreateAs("checkout", req);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(CallerAuthTest, PlaintextHealthListenerServesHealthOnly) {
  auto channel = grpc::CreateChannel(stack_->health_target(),
                                     grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  HealthCheckRequest req;
  req.set_service("payorch.v1.PaymentOrchestrator");
  HealthCheckResponse resp;
  grpc::Status st = Health::NewStub(channel)->Check(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  grpc::ClientContext ctx2;
  SetDeadline(&ctx2, absl::Seconds(5));
  v1::CreateCheckoutResponse created;
  st = v1::PaymentOrchestrator::NewStub(channel)->CreateCheckout(
      &ctx2, DropInCheckout(NewTransId("h")), &created);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// A Kubernetes Secret volume's layout in `dir`: tls.crt, tls.key and ca.crt
// are symlinks into ..data, which is swapped atomically to a new ..v<n> made
// from `from` (make_mtls_certs.sh output), as the kubelet does on an update.
absl::Status SwapTlsSecret(const std::string& dir, int n,
                           const std::string& from) {
  const std::string v = absl::StrCat(dir, "/..v", n);
  return RunCommand(
             absl::StrCat("set -e; mkdir -p '", v, "'; cp '", from,
                          "/server.pem' '", v, "/tls.crt'; cp '", from,
                          "/server.key' '", v, "/tls.key'; cp '", from,
                          "/ca.pem' '", v, "/ca.crt'; cd '", dir,
                          "'; ln -sfn ..v", n,
                          " ..data_tmp; mv -T ..data_tmp ..data; for f in "
                          "tls.crt tls.key ca.crt; do [ -L $f ] || ln -s "
                          "..data/$f $f; done"))
      .status();
}

// grpc.health.v1 on the mTLS port with the CA, client certificate and key in
// `certs` (make_mtls_certs.sh output; caller "admin"), on a new channel.
grpc::Status HealthWith(const Stack& stack, const std::string& certs) {
  grpc::SslCredentialsOptions tls;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  tls.pem_root_certs = read(certs + "/ca.pem");
  tls.pem_cert_chain = read(certs + "/client-admin.pem");
  tls.pem_private_key = read(certs + "/client-admin.key");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a new connection
  auto channel = grpc::CreateCustomChannel(stack.grpc_target(),
                                           grpc::SslCredentials(tls), args);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(3));
  HealthCheckResponse resp;
  return Health::NewStub(channel)->Check(&ctx, HealthCheckRequest(), &resp);
}

// cert-manager renews the Secret in place: payorchd serves the new
// certificate and trusts the new CA on new connections, without a restart.
TEST(CallerCertificateRotationTest, RenewedSecretIsServedWithoutRestart) {
  auto a = SharedMtlsCertificates();
  ASSERT_TRUE(a.ok()) << a.status();
  TempDir tmp;
  const std::string b = tmp.File("b"), live = tmp.File("tls");
  ASSERT_TRUE(RunCommand(absl::StrCat(PAYORCH_SOURCE_DIR
                                      "/scripts/make_mtls_certs.sh '",
                                      b, "' '", kAdminIdentity, "'"))
                  .ok());
  ASSERT_TRUE(SwapTlsSecret(live, 1, a->dir).ok());
  StackOptions options = StackOptions::Payorchd(
      {"--tls_cert_file=" + live + "/tls.crt",
       "--tls_key_file=" + live + "/tls.key",
       "--tls_client_ca_file=" + live + "/ca.crt", "--tls_reload_interval=1s"});
  auto stack = Stack::Start(options);
  ASSERT_TRUE(stack.ok()) << stack.status();
  const pid_t pid = (*stack)->payorchd_pid();
  ASSERT_TRUE(HealthWith(**stack, a->dir).ok());
  EXPECT_FALSE(HealthWith(**stack, b).ok()) << "another CA's caller got in";

  ASSERT_TRUE(SwapTlsSecret(live, 2, b).ok());
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!HealthWith(**stack, b).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  grpc::Status renewed = HealthWith(**stack, b);
  EXPECT_TRUE(renewed.ok()) << renewed.error_message() << "\n"
                            << (*stack)->PayorchdLog();
  EXPECT_FALSE(HealthWith(**stack, a->dir).ok())
      << "the replaced CA still admits callers";
  EXPECT_EQ((*stack)->payorchd_pid(), pid);
}

// A Secret with a key that does not match its certificate (or no PEM at all)
// stops payorchd at start, naming the problem, instead of a process that
// fails every handshake.
TEST(CallerCertificateRotationTest, MismatchedOrBrokenTlsFilesStopTheStart) {
  auto a = SharedMtlsCertificates();
  ASSERT_TRUE(a.ok()) << a.status();
  TempDir tmp;
  std::string garbage = tmp.Write("garbage.pem", "not a certificate\n");
  std::string merchants = tmp.Write("merchants.json", R"({"merchants": []})");
  std::string policy = tmp.Write("policy.json", Stack::DefaultCallerPolicy());
  auto run = [&](const std::string& cert, const std::string& key) {
    return RunCommand(absl::StrCat(
        BinaryPath("payorchd"), " --grpc_listen=127.0.0.1:0",
        " --http_listen=127.0.0.1:0 --redis_url=memory", " --merchants_config=",
        merchants, " --tls_cert_file=", cert, " --tls_key_file=", key,
        " --tls_client_ca_file=", a->ca_file, " --caller_policy=", policy));
  };
  auto mismatched = run(a->server_cert_file, a->ClientKey("admin"));
  ASSERT_FALSE(mismatched.ok());
  EXPECT_TRUE(absl::StrContains(mismatched.status().message(),
                                "key does not match the certificate"))
      << mismatched.status();
  auto broken = run(garbage, a->server_key_file);
  ASSERT_FALSE(broken.ok());
  EXPECT_TRUE(absl::StrContains(broken.status().message(),
                                "certificate: no PEM certificate"))
      << broken.status();
}

}  // namespace
}  // namespace payorch::testing
