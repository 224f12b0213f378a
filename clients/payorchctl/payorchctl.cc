// payorchctl: a small command-line client for payorchd that prints JSON.
//
//   payorchctl [--target=127.0.0.1:50051] [--timeout=30s]
//              [--ca=ca.pem --cert=client.pem --key=client.key | --plaintext]
//              <command> [request JSON]
//
// mTLS by default: --ca verifies payorchd, --cert/--key identify the caller
// (PAYORCH_CA / PAYORCH_CERT / PAYORCH_KEY when the flags are unset).
//
// `payorchctl probe --merchants=merchants.json [--merchant_id=M1] [--json]`
// talks to PayKKa itself, not to payorchd: it runs the PayKKa probe
// (adapters/paykka/probe.h) with the merchant's configuration from the same
// file payorchd reads and prints the report (a table, or JSON with --json).
// It refuses a production base_url without --allow_production and plain
// http without --allow_http. Exit 0 when every assumption is CONFIRMED, 3
// when one is REFUTED or UNKNOWN, 2 on usage or configuration errors.
//
// Commands: create-checkout, session, order, charge, health, watch. The
// request is
// the RPC's request message in proto3 JSON (field names as in the .proto),
// given as the argument or on stdin ("-"). Shorthand flags fill common fields:
//   payorchctl order --merchant_id=M1 --trans_id=T1
// On success prints the response as JSON and exits 0; on an error prints
// {"code":..., "message":..., "details":[...]} (the google.rpc.Status) and
// exits 1. Exit 2 on usage errors.
//
// watch streams, printing one JSON object per line as messages come:
//   payorchctl watch --merchant_id=M1 --session_id=CS1   # WatchOrder
//   payorchctl watch --merchant_id=M1 [--resume_token=T] # WatchMerchantEvents
// It runs until the stream ends (WatchOrder: after a final status), or for
// --watch_for when set; the exit code is the stream's end as above.
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
#include "adapters/paykka/curl_transport.h"
#include "adapters/paykka/merchant_config.h"
#include "adapters/paykka/probe.h"
#include "common/event_loop.h"
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
ABSL_FLAG(std::string, resume_token, "",
          "watch: resume a merchant's events after this token");
ABSL_FLAG(absl::Duration, watch_for, absl::ZeroDuration(),
          "watch: stop after this long (0: until the stream ends)");
ABSL_FLAG(std::string, merchants, "",
          "probe: the merchants config payorchd reads (--merchants_config)");
ABSL_FLAG(bool, json, false, "probe: print the report as JSON");
ABSL_FLAG(bool, allow_production, false,
          "probe: run against PayKKa production (creates a real session)");
ABSL_FLAG(bool, allow_http, false,
          "probe: accept a plain http base_url (a local sandbox)");
ABSL_FLAG(std::string, paykka_ca_file, "",
          "probe: extra CA bundle (PEM) for PayKKa's certificate");
ABSL_FLAG(std::string, currency, "USD",
          "probe: currency of the probe's session (amount: 1 minor unit)");

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

// The merchant to probe: --merchant_id, or the file's only one.
const payorch::paykka::MerchantConfig* PickMerchant(
    const std::vector<payorch::paykka::MerchantConfig>& merchants) {
  const std::string wanted = absl::GetFlag(FLAGS_merchant_id);
  for (const auto& m : merchants) {
    if (m.merchant_id == wanted || (wanted.empty() && merchants.size() == 1)) {
      return &m;
    }
  }
  std::cerr << "payorchctl probe: "
            << (wanted.empty() ? "the config has several merchants: name one "
                                 "with --merchant_id"
                               : "no merchant " + wanted + " in the config")
            << "\n";
  return nullptr;
}

// payorchctl probe: PayKKa directly, through the adapter (no payorchd).
int ProbeCommand() {
  namespace paykka = payorch::paykka;
  const std::string path = absl::GetFlag(FLAGS_merchants);
  if (path.empty()) {
    std::cerr << "payorchctl probe: --merchants=<merchants config> needed\n";
    return 2;
  }
  auto merchants = paykka::LoadMerchantConfigs(path);
  if (!merchants.ok()) {
    std::cerr << "payorchctl probe: " << merchants.status().message() << "\n";
    return 2;
  }
  const paykka::MerchantConfig* merchant = PickMerchant(*merchants);
  if (merchant == nullptr) return 2;
  absl::Status target =
      paykka::CheckProbeTarget(*merchant, absl::GetFlag(FLAGS_allow_production),
                               absl::GetFlag(FLAGS_allow_http));
  if (!target.ok()) {
    std::cerr << "payorchctl probe: " << target.message() << "\n";
    return 2;
  }
  auto loop = payorch::EventLoop::Start("probe-io");
  if (!loop.ok()) return 2;
  paykka::CurlMultiTransport::Options transport_options;
  transport_options.ca_file = absl::GetFlag(FLAGS_paykka_ca_file);
  auto transport =
      paykka::CurlMultiTransport::Create(loop->get(), transport_options);
  if (!transport.ok()) return 2;
  paykka::ProbeOptions options;
  options.currency = absl::GetFlag(FLAGS_currency);
  options.call_timeout = absl::GetFlag(FLAGS_timeout);
  paykka::ProbeReport report = paykka::RunProbe(
      *merchant, options,
      paykka::ExchangeOver(transport->get(), options.call_timeout));
  transport->reset();  // while the loop still runs
  std::cout << (absl::GetFlag(FLAGS_json) ? report.ToJson().dump(2) + "\n"
                                          : report.ToTable());
  return report.AllConfirmed() ? 0 : 3;
}

int RpcCommand(const std::string& command, std::string json);

std::string OneLine(const Message& m) {
  JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

// Prints each message of a server stream on its own line, as it comes.
template <typename Response>
grpc::Status PrintStream(grpc::ClientReader<Response>* reader) {
  Response r;
  while (reader->Read(&r)) std::cout << OneLine(r) << std::endl;
  return reader->Finish();
}

// watch: WatchOrder with an order_id, session_id or trans_id, else
// WatchMerchantEvents (from --resume_token when set).
int WatchCommand(const std::string& json) {
  grpc::ClientContext ctx;
  const absl::Duration watch_for = absl::GetFlag(FLAGS_watch_for);
  if (watch_for > absl::ZeroDuration()) {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + watch_for));
  }
  auto stub = v1::PaymentOrchestrator::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_target), ChannelCredentials()));
  v1::WatchOrderRequest order;
  if (!FromJson(json, &order)) return 2;
  ApplyShorthands(&order);
  if (!absl::GetFlag(FLAGS_order_id).empty())
    order.set_order_id(absl::GetFlag(FLAGS_order_id));
  if (!absl::GetFlag(FLAGS_session_id).empty())
    order.set_session_id(absl::GetFlag(FLAGS_session_id));
  if (!absl::GetFlag(FLAGS_trans_id).empty())
    order.set_trans_id(absl::GetFlag(FLAGS_trans_id));
  grpc::Status status;
  if (order.lookup_case() != v1::WatchOrderRequest::LOOKUP_NOT_SET) {
    status = PrintStream(stub->WatchOrder(&ctx, order).get());
  } else {
    v1::WatchMerchantEventsRequest events;
    events.set_merchant_id(order.merchant_id());
    events.set_resume_token(absl::GetFlag(FLAGS_resume_token));
    status = PrintStream(stub->WatchMerchantEvents(&ctx, events).get());
  }
  const bool timed_out =
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      watch_for > absl::ZeroDuration();
  if (!status.ok() && !timed_out) return PrintError(status);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "payorchctl [--target=host:port] "
      "<create-checkout|session|order|charge|health|watch> "
      "[request-json | -]\n  payorchctl probe --merchants=FILE "
      "[--merchant_id=M] [--json]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << "usage: " << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  std::string command = args[1];
  if (command == "probe") return ProbeCommand();
  std::string json = args.size() > 2 ? args[2] : "";
  if (json == "-") json.assign(std::istreambuf_iterator<char>(std::cin), {});
  if (command == "watch") return WatchCommand(json);
  return RpcCommand(command, std::move(json));
}

namespace {

// The commands that call payorchd.
int RpcCommand(const std::string& command, std::string json) {
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

}  // namespace
