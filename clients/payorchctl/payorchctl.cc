// payorchctl: a small command-line client for payorchd that prints JSON.
//
//   payorchctl [--target=127.0.0.1:50051] [--timeout=30s]
//              [--ca=ca.pem --cert=client.pem --key=client.key | --plaintext]
//              <command> [request JSON]
//
// mTLS by default: --ca verifies payorchd, --cert/--key identify the caller
// (PAYORCH_CA / PAYORCH_CERT / PAYORCH_KEY when the flags are unset).
//
// Commands: create-checkout, session, order, charge, health. The request is
// the RPC's request message in proto3 JSON (field names as in the .proto),
// given as the argument or on stdin ("-"). Shorthand flags fill common fields:
//   payorchctl order --merchant_id=M1 --trans_id=T1
// On success prints the response as JSON and exits 0; on an error prints
// {"code":..., "message":..., "details":[...]} (the google.rpc.Status) and
// exits 1. Exit 2 on usage errors.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "payorch/v1/payorch.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "payorchd gRPC address");
ABSL_FLAG(std::string, ca, "", "PEM CA that signs payorchd's certificate");
ABSL_FLAG(std::string, cert, "", "PEM client certificate (the caller)");
ABSL_FLAG(std::string, key, "", "PEM private key of --cert");
ABSL_FLAG(bool, plaintext, false,
          "connect without TLS (payorchd --insecure_plaintext or "
          "--health_listen)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "deadline of the call");
ABSL_FLAG(std::string, merchant_id, "", "shorthand: request merchant_id");
ABSL_FLAG(std::string, trans_id, "",
          "shorthand: request trans_id (or lookup by trans_id)");
ABSL_FLAG(std::string, session_id, "", "shorthand: lookup by session_id");
ABSL_FLAG(std::string, order_id, "", "shorthand: lookup by order_id");

namespace {

namespace v1 = payorch::v1;
using google::protobuf::Message;
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

std::string ToJson(const Message& m) {
  JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (!st.ok()) {
    std::cerr << "payorchctl: cannot print " << m.GetTypeName()
              << " as JSON: " << st.ToString() << "\n";
  }
  return out;
}

bool FromJson(const std::string& json, Message* m) {
  if (json.empty()) return true;
  JsonParseOptions opts;
  auto st = google::protobuf::util::JsonStringToMessage(json, m, opts);
  if (!st.ok()) {
    std::cerr << "payorchctl: request is not valid JSON for "
              << m->GetTypeName() << ": " << st.ToString() << "\n";
    return false;
  }
  return true;
}

// Prints a failed call's google.rpc.Status (ErrorInfo, BadRequest, RetryInfo).
int PrintError(const grpc::Status& status) {
  google::rpc::Status rpc;
  if (!status.error_details().empty() &&
      rpc.ParseFromString(status.error_details())) {
    // The JSON printer resolves each Any in the generated pool: naming the
    // detail types keeps them linked in (otherwise it stops at "details").
    (void)google::rpc::ErrorInfo::descriptor();
    (void)google::rpc::BadRequest::descriptor();
    (void)google::rpc::RetryInfo::descriptor();
    std::cout << ToJson(rpc);
  } else {
    rpc.set_code(status.error_code());
    rpc.set_message(status.error_message());
    std::cout << ToJson(rpc);
  }
  return 1;
}

template <typename Req>
void ApplyShorthands(Req* req) {
  if (!absl::GetFlag(FLAGS_merchant_id).empty())
    req->set_merchant_id(absl::GetFlag(FLAGS_merchant_id));
}

}  // namespace

namespace {

// The flag's value, else the environment variable's.
std::string FlagOrEnv(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  const char* v = std::getenv(env);
  return v != nullptr ? v : "";
}

std::string ReadPem(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "payorchctl: cannot read " << path << "\n";
    std::exit(2);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// mTLS channel credentials from --ca/--cert/--key, or plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() {
  if (absl::GetFlag(FLAGS_plaintext)) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions tls;
  std::string ca = FlagOrEnv(absl::GetFlag(FLAGS_ca), "PAYORCH_CA");
  std::string cert = FlagOrEnv(absl::GetFlag(FLAGS_cert), "PAYORCH_CERT");
  std::string key = FlagOrEnv(absl::GetFlag(FLAGS_key), "PAYORCH_KEY");
  if (!ca.empty()) tls.pem_root_certs = ReadPem(ca);
  if (!cert.empty()) tls.pem_cert_chain = ReadPem(cert);
  if (!key.empty()) tls.pem_private_key = ReadPem(key);
  return grpc::SslCredentials(tls);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "payorchctl [--target=host:port] "
      "<create-checkout|session|order|charge|health> "
      "[request-json | -]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << "usage: " << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  std::string command = args[1];
  std::string json = args.size() > 2 ? args[2] : "";
  if (json == "-") json.assign(std::istreambuf_iterator<char>(std::cin), {});

  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_target), ChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  auto stub = v1::PaymentOrchestrator::NewStub(channel);
  grpc::Status status;

  if (command == "create-checkout") {
    v1::CreateCheckoutRequest req;
    v1::CreateCheckoutResponse resp;
    if (!FromJson(json, &req)) return 2;
    ApplyShorthands(&req);
    if (!absl::GetFlag(FLAGS_trans_id).empty())
      req.set_trans_id(absl::GetFlag(FLAGS_trans_id));
    status = stub->CreateCheckout(&ctx, req, &resp);
    if (status.ok()) std::cout << ToJson(resp);
  } else if (command == "charge") {
    v1::ChargeRecurringRequest req;
    v1::ChargeRecurringResponse resp;
    if (!FromJson(json, &req)) return 2;
    ApplyShorthands(&req);
    if (!absl::GetFlag(FLAGS_trans_id).empty())
      req.set_trans_id(absl::GetFlag(FLAGS_trans_id));
    status = stub->ChargeRecurring(&ctx, req, &resp);
    if (status.ok()) std::cout << ToJson(resp);
  } else if (command == "session") {
    v1::GetSessionStatusRequest req;
    v1::GetSessionStatusResponse resp;
    if (!FromJson(json, &req)) return 2;
    ApplyShorthands(&req);
    if (!absl::GetFlag(FLAGS_session_id).empty())
      req.set_session_id(absl::GetFlag(FLAGS_session_id));
    if (!absl::GetFlag(FLAGS_trans_id).empty())
      req.set_trans_id(absl::GetFlag(FLAGS_trans_id));
    status = stub->GetSessionStatus(&ctx, req, &resp);
    if (status.ok()) std::cout << ToJson(resp);
  } else if (command == "order") {
    v1::GetOrderRequest req;
    v1::GetOrderResponse resp;
    if (!FromJson(json, &req)) return 2;
    ApplyShorthands(&req);
    if (!absl::GetFlag(FLAGS_order_id).empty())
      req.set_order_id(absl::GetFlag(FLAGS_order_id));
    if (!absl::GetFlag(FLAGS_session_id).empty())
      req.set_session_id(absl::GetFlag(FLAGS_session_id));
    if (!absl::GetFlag(FLAGS_trans_id).empty())
      req.set_trans_id(absl::GetFlag(FLAGS_trans_id));
    status = stub->GetOrder(&ctx, req, &resp);
    if (status.ok()) std::cout << ToJson(resp);
  } else if (command == "health") {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (!FromJson(json, &req)) return 2;
    status = health->Check(&ctx, req, &resp);
    if (status.ok()) std::cout << ToJson(resp);
  } else {
    std::cerr << "payorchctl: unknown command '" << command
              << "'\nusage: " << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  if (!status.ok()) return PrintError(status);
  return 0;
}
