// paykka-sandbox: a local PayKKa v3 simulator. See sandbox/README.md.

#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "sandbox/faults.h"
#include "sandbox/server.h"

namespace {

using payorch::sandbox::FaultConfig;
using payorch::sandbox::Json;

constexpr char kUsage[] =
    "usage: paykka-sandbox --config=FILE [--listen=127.0.0.1:0]\n"
    "  [--platform-key=FILE] [--platform-public-key-out=FILE] [--seed=N]\n"
    "  [--duplicate-trans-id=reject|return_existing|create]\n"
    "  [--duplicate-trans-id-status=N] [--duplicate-trans-id-code=S]\n"
    "  [--duplicate-trans-id-msg=S] [--max-body-bytes=N]\n"
    "  [--webhook-retry-initial-ms=N] [--webhook-max-attempts=N]\n"
    "  [--sign-responses=true|false] [--session-ttl-seconds=N]\n"
    "  [--fault=JSON] [--latency-ms=N] [--jitter-ms=N] [--http-status=N]\n"
    "  [--error-rate=R] [--timeout-after-commit-rate=R] [--reset-rate=R]\n"
    "  [--malformed-json-rate=R] [--bad-signature-rate=R]\n"
    "  [--fault-endpoint=PATH]\n"
    "  [--tls-listen=127.0.0.1:0 --tls-cert=CHAIN.pem --tls-key=KEY.pem]\n";

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "paykka-sandbox: %s\n", msg.c_str());
  std::exit(2);
}

int64_t ParseInt(const char* flag, const char* v) {
  int64_t out = 0;
  if (!absl::SimpleAtoi(v, &out) || out < 0) {
    Die(absl::StrCat("--", flag, " needs a non-negative integer"));
  }
  return out;
}

double ParseRate(const char* flag, const char* v) {
  double out = 0;
  if (!absl::SimpleAtod(v, &out) || out < 0 || out > 1) {
    Die(absl::StrCat("--", flag, " needs a number in [0,1]"));
  }
  return out;
}

void ParseHostPort(const char* flag, const std::string& v, std::string* host,
                   int* port) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos)
    Die(absl::StrCat("--", flag, " needs HOST:PORT"));
  *host = v.substr(0, colon);
  *port = static_cast<int>(ParseInt(flag, v.c_str() + colon + 1));
}

void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks lock order on every Mutex acquisition; the
  // sandbox has no nested locks and is on the benchmarks' hot path.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  enum {
    kListen = 1000,
    kConfig,
    kPlatformKey,
    kPublicKeyOut,
    kSeed,
    kDuplicate,
    kDuplicateStatus,
    kDuplicateCode,
    kDuplicateMsg,
    kMaxBody,
    kRetryInitial,
    kMaxAttempts,
    kSignResponses,
    kSessionTtl,
    kFault,
    kLatency,
    kJitter,
    kHttpStatus,
    kErrorRate,
    kTimeoutRate,
    kResetRate,
    kMalformedRate,
    kBadSignRate,
    kFaultEndpoint,
    kTlsListen,
    kTlsCert,
    kTlsKey,
    kHelp,
  };
  static const option kOptions[] = {
      {"listen", required_argument, nullptr, kListen},
      {"config", required_argument, nullptr, kConfig},
      {"platform-key", required_argument, nullptr, kPlatformKey},
      {"platform-public-key-out", required_argument, nullptr, kPublicKeyOut},
      {"seed", required_argument, nullptr, kSeed},
      {"duplicate-trans-id", required_argument, nullptr, kDuplicate},
      {"duplicate-trans-id-status", required_argument, nullptr,
       kDuplicateStatus},
      {"duplicate-trans-id-code", required_argument, nullptr, kDuplicateCode},
      {"duplicate-trans-id-msg", required_argument, nullptr, kDuplicateMsg},
      {"max-body-bytes", required_argument, nullptr, kMaxBody},
      {"webhook-retry-initial-ms", required_argument, nullptr, kRetryInitial},
      {"webhook-max-attempts", required_argument, nullptr, kMaxAttempts},
      {"sign-responses", required_argument, nullptr, kSignResponses},
      {"session-ttl-seconds", required_argument, nullptr, kSessionTtl},
      {"fault", required_argument, nullptr, kFault},
      {"latency-ms", required_argument, nullptr, kLatency},
      {"jitter-ms", required_argument, nullptr, kJitter},
      {"http-status", required_argument, nullptr, kHttpStatus},
      {"error-rate", required_argument, nullptr, kErrorRate},
      {"timeout-after-commit-rate", required_argument, nullptr, kTimeoutRate},
      {"reset-rate", required_argument, nullptr, kResetRate},
      {"malformed-json-rate", required_argument, nullptr, kMalformedRate},
      {"bad-signature-rate", required_argument, nullptr, kBadSignRate},
      {"fault-endpoint", required_argument, nullptr, kFaultEndpoint},
      {"tls-listen", required_argument, nullptr, kTlsListen},
      {"tls-cert", required_argument, nullptr, kTlsCert},
      {"tls-key", required_argument, nullptr, kTlsKey},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };

  payorch::sandbox::ServerOptions options;
  payorch::sandbox::StoreOptions store_options;
  std::string config_path, platform_key_path, public_key_out, fault_json;
  Json rule = Json::object();
  int64_t seed = -1;
  int c;
  while ((c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    switch (c) {
      case kListen:
        ParseHostPort("listen", optarg, &options.listen_host,
                      &options.listen_port);
        break;
      case kTlsListen:
        ParseHostPort("tls-listen", optarg, &options.tls_listen_host,
                      &options.tls_listen_port);
        break;
      case kTlsCert:
        options.tls_cert_file = optarg;
        break;
      case kTlsKey:
        options.tls_key_file = optarg;
        break;
      case kConfig:
        config_path = optarg;
        break;
      case kPlatformKey:
        platform_key_path = optarg;
        break;
      case kPublicKeyOut:
        public_key_out = optarg;
        break;
      case kSeed:
        seed = ParseInt("seed", optarg);
        break;
      case kDuplicate: {
        auto mode = payorch::sandbox::ParseDuplicateMode(optarg);
        if (!mode.ok()) {
          Die("--duplicate-trans-id must be reject, return_existing or create");
        }
        store_options.duplicate_trans_id.mode = *mode;
        break;
      }
      case kDuplicateStatus:
        store_options.duplicate_trans_id.http_status =
            static_cast<int>(ParseInt("duplicate-trans-id-status", optarg));
        if (store_options.duplicate_trans_id.http_status < 200 ||
            store_options.duplicate_trans_id.http_status > 599) {
          Die("--duplicate-trans-id-status must be in [200,599]");
        }
        break;
      case kDuplicateCode:
        store_options.duplicate_trans_id.ret_code = optarg;
        break;
      case kDuplicateMsg:
        store_options.duplicate_trans_id.ret_msg = optarg;
        break;
      case kMaxBody:
        options.max_body_bytes =
            static_cast<size_t>(ParseInt("max-body-bytes", optarg));
        break;
      case kRetryInitial:
        options.webhook_retry_initial =
            absl::Milliseconds(ParseInt("webhook-retry-initial-ms", optarg));
        break;
      case kMaxAttempts:
        options.webhook_max_attempts =
            static_cast<int>(ParseInt("webhook-max-attempts", optarg));
        break;
      case kSignResponses:
        if (std::string(optarg) == "true") {
          options.sign_responses = true;
        } else if (std::string(optarg) == "false") {
          options.sign_responses = false;
        } else {
          Die("--sign-responses must be true or false");
        }
        break;
      case kSessionTtl:
        store_options.default_session_ttl =
            absl::Seconds(ParseInt("session-ttl-seconds", optarg));
        break;
      case kFault:
        fault_json = optarg;
        break;
      case kLatency:
        rule["latency_ms"] = ParseInt("latency-ms", optarg);
        break;
      case kJitter:
        rule["jitter_ms"] = ParseInt("jitter-ms", optarg);
        break;
      case kHttpStatus:
        rule["http_status"] = ParseInt("http-status", optarg);
        break;
      case kErrorRate:
        rule["error_rate"] = ParseRate("error-rate", optarg);
        break;
      case kTimeoutRate:
        rule["timeout_after_commit_rate"] =
            ParseRate("timeout-after-commit-rate", optarg);
        break;
      case kResetRate:
        rule["reset_rate"] = ParseRate("reset-rate", optarg);
        break;
      case kMalformedRate:
        rule["malformed_json_rate"] = ParseRate("malformed-json-rate", optarg);
        break;
      case kBadSignRate:
        rule["bad_signature_rate"] = ParseRate("bad-signature-rate", optarg);
        break;
      case kFaultEndpoint:
        rule["endpoint"] = optarg;
        break;
      case kHelp:
        std::fputs(kUsage, stdout);
        return 0;
      default:
        std::fputs(kUsage, stderr);
        return 2;
    }
  }
  if (optind < argc) Die(absl::StrCat("unexpected argument ", argv[optind]));
  if (config_path.empty()) Die("--config is required");
  if ((options.tls_listen_port >= 0) !=
      (!options.tls_cert_file.empty() && !options.tls_key_file.empty())) {
    Die("--tls-listen, --tls-cert and --tls-key go together");
  }

  // Faults: --fault=JSON, then the single-rule flags as one more rule.
  Json fault_obj = Json::object();
  if (!fault_json.empty()) {
    fault_obj = Json::parse(fault_json, nullptr, false);
    if (fault_obj.is_discarded()) Die("--fault is not JSON");
    if (!fault_obj.contains("rules") && fault_obj.is_object() &&
        !fault_obj.empty()) {
      Json seed_value = fault_obj.value("seed", Json());
      fault_obj.erase("seed");
      fault_obj = Json{{"rules", Json::array({fault_obj})}};
      if (!seed_value.is_null()) fault_obj["seed"] = seed_value;
    }
  }
  if (!rule.empty()) fault_obj["rules"].push_back(rule);
  if (seed >= 0) fault_obj["seed"] = seed;
  absl::StatusOr<FaultConfig> faults =
      payorch::sandbox::ParseFaultConfig(fault_obj);
  if (!faults.ok()) Die(std::string(faults.status().message()));

  absl::StatusOr<std::string> config_text = payorch::ReadFile(config_path);
  if (!config_text.ok()) Die(std::string(config_text.status().message()));
  std::string base_dir = config_path.substr(
      0,
      config_path.rfind('/') == std::string::npos ? 0 : config_path.rfind('/'));
  auto merchants =
      payorch::sandbox::ParseMerchantsConfig(*config_text, base_dir);
  if (!merchants.ok()) Die(std::string(merchants.status().message()));

  absl::StatusOr<payorch::RsaPrivateKey> key =
      absl::InvalidArgumentError("unset");
  bool generated = false;
  if (!platform_key_path.empty()) {
    absl::StatusOr<std::string> text = payorch::ReadFile(platform_key_path);
    if (text.ok()) {
      key = payorch::RsaPrivateKey::Parse(*text);
      if (!key.ok())
        Die("--platform-key: " + std::string(key.status().message()));
    }
  }
  if (!key.ok()) {
    key = payorch::RsaPrivateKey::Generate(2048);
    if (!key.ok()) Die("cannot generate the platform key");
    generated = true;
    if (!platform_key_path.empty()) {
      std::ofstream out(platform_key_path, std::ios::binary | std::ios::trunc);
      out << key->ToPkcs8Pem();
      if (!out) Die("cannot write --platform-key file");
    }
  }
  (void)generated;
  if (!public_key_out.empty()) {
    std::ofstream out(public_key_out, std::ios::binary | std::ios::trunc);
    out << key->PublicKeyPem();
    if (!out) Die("cannot write --platform-public-key-out file");
  }

  RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);
  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = payorch::sandbox::Server::Start(
      options, store_options, *std::move(merchants), *std::move(key),
      *std::move(faults));
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
