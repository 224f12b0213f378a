// paykka-sandbox: a local PayKKa v3 simulator. See sandbox/README.md.

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "sandbox/faults.h"
#include "sandbox/server.h"

ABSL_FLAG(std::string, config, "", "merchants config (JSON; README 'Config')");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "IPv4 HOST:PORT (port 0 picks a free one, printed on stdout)");
ABSL_FLAG(std::string, tls_listen, "",
          "HOST:PORT of an HTTPS listener (with --tls_cert and --tls_key)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain for HTTPS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for HTTPS");
ABSL_FLAG(std::string, platform_key, "",
          "PKCS#8 PEM of the platform (PayKKa) key; generated and written "
          "there if the file is missing");
ABSL_FLAG(std::string, platform_public_key_out, "",
          "writes the platform public key (SPKI PEM) here");
ABSL_FLAG(std::string, duplicate_trans_id, "reject",
          "a repeated trans_id: reject, return_existing or create");
ABSL_FLAG(int, duplicate_trans_id_status, 400,
          "HTTP status of the duplicate trans_id refusal");
ABSL_FLAG(std::string, duplicate_trans_id_code, "010000",
          "ret_code of the duplicate trans_id refusal");
ABSL_FLAG(std::string, duplicate_trans_id_msg, "duplicate trans_id",
          "ret_msg of the duplicate trans_id refusal");
ABSL_FLAG(int64_t, max_body_bytes, 1 << 20,
          "larger request bodies get HTTP 413");
ABSL_FLAG(int64_t, webhook_retry_initial_ms, 1000,
          "first webhook retry delay; doubles after each attempt");
ABSL_FLAG(int, webhook_max_attempts, 8,
          "webhook attempts per notification, the first one included");
ABSL_FLAG(bool, sign_responses, true,
          "add x-paykka-timestamp/nonce/sign to responses");
ABSL_FLAG(std::string, query_session_path, "/v3/payment/acq/session/query",
          "where Query Session answers (a variant of PayKKa's protocol)");
ABSL_FLAG(std::string, response_sign_recipe, "timestamp_nonce_body",
          "what response signatures cover: timestamp_nonce_body or body");
ABSL_FLAG(int64_t, session_ttl_seconds, 1800,
          "lifetime of a session created without expire_time");
ABSL_FLAG(std::optional<int64_t>, seed, std::nullopt,
          "fault RNG seed (default 42; overrides --fault's seed)");
ABSL_FLAG(std::string, fault, "",
          "a fault object (README 'Faults'), or a single rule object");
// One more fault rule, built from those of these flags that are given.
ABSL_FLAG(std::optional<int64_t>, latency_ms, std::nullopt,
          "fault rule: latency");
ABSL_FLAG(std::optional<int64_t>, jitter_ms, std::nullopt,
          "fault rule: uniform extra latency");
ABSL_FLAG(std::optional<int64_t>, http_status, std::nullopt,
          "fault rule: error status");
ABSL_FLAG(std::optional<double>, error_rate, std::nullopt,
          "fault rule: rate of http_status");
ABSL_FLAG(std::optional<double>, timeout_after_commit_rate, std::nullopt,
          "fault rule");
ABSL_FLAG(std::optional<double>, reset_rate, std::nullopt, "fault rule");
ABSL_FLAG(std::optional<double>, malformed_json_rate, std::nullopt,
          "fault rule");
ABSL_FLAG(std::optional<double>, bad_signature_rate, std::nullopt,
          "fault rule");
ABSL_FLAG(std::optional<std::string>, fault_endpoint, std::nullopt,
          "fault rule: the endpoint it applies to (default *)");

namespace {

using payorch::sandbox::FaultConfig;
using payorch::sandbox::Json;

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "paykka-sandbox: %s\n", msg.c_str());
  std::exit(2);
}

// The flags used to be spelled with hyphens (--max-body-bytes); both
// spellings are accepted: "--a-b=c" becomes "--a_b=c".
std::vector<std::string> UnderscoreFlagNames(int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  for (size_t i = 1; i < out.size(); ++i) {
    std::string& a = out[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    size_t end = std::min(a.find('='), a.size());
    for (size_t j = 2; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  return out;
}

void ParseHostPort(const char* flag, const std::string& v, std::string* host,
                   int* port) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(v.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    Die(absl::StrCat("--", flag, " needs HOST:PORT"));
  }
  *host = v.substr(0, colon);
}

int64_t NonNegative(const char* flag, int64_t v) {
  if (v < 0) Die(absl::StrCat("--", flag, " needs a non-negative integer"));
  return v;
}

// --fault, then the single-rule flags given as one more rule, then --seed.
FaultConfig FaultsFromFlags() {
  Json faults = Json::object();
  std::string text = absl::GetFlag(FLAGS_fault);
  if (!text.empty()) {
    faults = Json::parse(text, nullptr, false);
    if (faults.is_discarded()) Die("--fault is not JSON");
    if (!faults.contains("rules") && faults.is_object() && !faults.empty()) {
      Json seed = faults.value("seed", Json());
      faults.erase("seed");
      faults = Json{{"rules", Json::array({faults})}};
      if (!seed.is_null()) faults["seed"] = seed;
    }
  }
  Json rule = Json::object();
  auto add = [&rule](const char* name, const auto& value) {
    if (value.has_value()) rule[name] = *value;
  };
  add("latency_ms", absl::GetFlag(FLAGS_latency_ms));
  add("jitter_ms", absl::GetFlag(FLAGS_jitter_ms));
  add("http_status", absl::GetFlag(FLAGS_http_status));
  add("error_rate", absl::GetFlag(FLAGS_error_rate));
  add("timeout_after_commit_rate",
      absl::GetFlag(FLAGS_timeout_after_commit_rate));
  add("reset_rate", absl::GetFlag(FLAGS_reset_rate));
  add("malformed_json_rate", absl::GetFlag(FLAGS_malformed_json_rate));
  add("bad_signature_rate", absl::GetFlag(FLAGS_bad_signature_rate));
  add("endpoint", absl::GetFlag(FLAGS_fault_endpoint));
  if (!rule.empty()) faults["rules"].push_back(rule);
  if (std::optional<int64_t> seed = absl::GetFlag(FLAGS_seed)) {
    faults["seed"] = NonNegative("seed", *seed);
  }
  absl::StatusOr<FaultConfig> config =
      payorch::sandbox::ParseFaultConfig(faults);
  if (!config.ok()) Die(std::string(config.status().message()));
  return *config;
}

payorch::sandbox::StoreOptions StoreOptionsFromFlags() {
  payorch::sandbox::StoreOptions o;
  auto mode = payorch::sandbox::ParseDuplicateMode(
      absl::GetFlag(FLAGS_duplicate_trans_id));
  if (!mode.ok()) {
    Die("--duplicate_trans_id must be reject, return_existing or create");
  }
  o.duplicate_trans_id.mode = *mode;
  o.duplicate_trans_id.http_status =
      absl::GetFlag(FLAGS_duplicate_trans_id_status);
  if (o.duplicate_trans_id.http_status < 200 ||
      o.duplicate_trans_id.http_status > 599) {
    Die("--duplicate_trans_id_status must be in [200,599]");
  }
  o.duplicate_trans_id.ret_code = absl::GetFlag(FLAGS_duplicate_trans_id_code);
  o.duplicate_trans_id.ret_msg = absl::GetFlag(FLAGS_duplicate_trans_id_msg);
  o.default_session_ttl = absl::Seconds(NonNegative(
      "session_ttl_seconds", absl::GetFlag(FLAGS_session_ttl_seconds)));
  return o;
}

payorch::sandbox::ServerOptions ServerOptionsFromFlags() {
  payorch::sandbox::ServerOptions o;
  ParseHostPort("listen", absl::GetFlag(FLAGS_listen), &o.listen_host,
                &o.listen_port);
  if (!absl::GetFlag(FLAGS_tls_listen).empty()) {
    ParseHostPort("tls_listen", absl::GetFlag(FLAGS_tls_listen),
                  &o.tls_listen_host, &o.tls_listen_port);
  }
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  if ((o.tls_listen_port >= 0) !=
      (!o.tls_cert_file.empty() && !o.tls_key_file.empty())) {
    Die("--tls_listen, --tls_cert and --tls_key go together");
  }
  o.max_body_bytes = static_cast<size_t>(
      NonNegative("max_body_bytes", absl::GetFlag(FLAGS_max_body_bytes)));
  o.webhook_retry_initial = absl::Milliseconds(
      NonNegative("webhook_retry_initial_ms",
                  absl::GetFlag(FLAGS_webhook_retry_initial_ms)));
  o.webhook_max_attempts = static_cast<int>(NonNegative(
      "webhook_max_attempts", absl::GetFlag(FLAGS_webhook_max_attempts)));
  o.sign_responses = absl::GetFlag(FLAGS_sign_responses);
  o.query_session_path = absl::GetFlag(FLAGS_query_session_path);
  if (o.query_session_path.empty() || o.query_session_path[0] != '/') {
    Die("--query_session_path must start with /");
  }
  const std::string recipe = absl::GetFlag(FLAGS_response_sign_recipe);
  if (recipe != "timestamp_nonce_body" && recipe != "body") {
    Die("--response_sign_recipe must be timestamp_nonce_body or body");
  }
  o.sign_body_only = recipe == "body";
  return o;
}

std::vector<payorch::sandbox::Merchant> LoadMerchants() {
  std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) Die("--config is required");
  absl::StatusOr<std::string> text = payorch::ReadFile(path);
  if (!text.ok()) Die(std::string(text.status().message()));
  size_t slash = path.rfind('/');
  auto merchants = payorch::sandbox::ParseMerchantsConfig(
      *text, path.substr(0, slash == std::string::npos ? 0 : slash));
  if (!merchants.ok()) Die(std::string(merchants.status().message()));
  return *std::move(merchants);
}

void WriteFile(const std::string& path, const std::string& content,
               const char* flag) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) Die(absl::StrCat("cannot write --", flag, " file"));
}

// --platform_key's key, or a fresh one (written there when the flag is set).
payorch::RsaPrivateKey LoadPlatformKey() {
  std::string path = absl::GetFlag(FLAGS_platform_key);
  if (!path.empty()) {
    absl::StatusOr<std::string> text = payorch::ReadFile(path);
    if (text.ok()) {
      auto key = payorch::RsaPrivateKey::Parse(*text);
      if (!key.ok())
        Die("--platform_key: " + std::string(key.status().message()));
      return *std::move(key);
    }
  }
  auto key = payorch::RsaPrivateKey::Generate(2048);
  if (!key.ok()) Die("cannot generate the platform key");
  if (!path.empty()) WriteFile(path, key->ToPkcs8Pem(), "platform_key");
  return *std::move(key);
}

void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Serves until SIGTERM or SIGINT.
int Serve(const payorch::sandbox::ServerOptions& options,
          payorch::sandbox::StoreOptions store_options,
          std::vector<payorch::sandbox::Merchant> merchants,
          payorch::RsaPrivateKey key, FaultConfig faults) {
  RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);
  // Block the stop signals in every thread; sigwait below takes them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto server = payorch::sandbox::Server::Start(
      options, std::move(store_options), std::move(merchants), std::move(key),
      std::move(faults));
  if (!server.ok()) Die(std::string(server.status().message()));
  std::printf("listening %s:%d\n", options.listen_host.c_str(),
              (*server)->port());
  if ((*server)->tls_port() >= 0) {
    std::printf("https listening %s:%d\n", options.tls_listen_host.c_str(),
                (*server)->tls_port());
  }
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  server->reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks lock order on every Mutex acquisition; the
  // sandbox has no nested locks and is on the benchmarks' hot path.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "paykka-sandbox: a local PayKKa v3 simulator (see sandbox/README.md)");
  std::vector<std::string> args = UnderscoreFlagNames(argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  std::vector<char*> rest = absl::ParseCommandLine(
      static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  if (rest.size() > 1) Die(absl::StrCat("unexpected argument ", rest[1]));
  FaultConfig faults = FaultsFromFlags();
  payorch::sandbox::ServerOptions options = ServerOptionsFromFlags();
  payorch::sandbox::StoreOptions store_options = StoreOptionsFromFlags();
  std::vector<payorch::sandbox::Merchant> merchants = LoadMerchants();
  payorch::RsaPrivateKey key = LoadPlatformKey();
  std::string public_key_out = absl::GetFlag(FLAGS_platform_public_key_out);
  if (!public_key_out.empty()) {
    WriteFile(public_key_out, key.PublicKeyPem(), "platform_public_key_out");
  }
  return Serve(options, std::move(store_options), std::move(merchants),
               std::move(key), std::move(faults));
}
