// payorchd: the payorch gRPC server.
//
// Wiring only: flags and environment, the merchant configuration, the event
// loop shared by the PayKKa HTTP client and the Redis client, the gRPC server
// (PaymentOrchestrator, health, reflection), the side HTTP port (metrics,
// health, PayKKa webhooks) and graceful drain on SIGTERM.
//
// Every flag can also be set through the environment as PAYORCH_<FLAG> in
// upper case (e.g. PAYORCH_REDIS_URL); a flag on the command line wins.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/paykka/curl_transport.h"
#include "adapters/paykka/http_paykka_client.h"
#include "adapters/paykka/instrumented_transport.h"
#include "adapters/paykka/merchant_config.h"
#include "cache/event_log.h"
#include "cache/in_memory_idempotency_store.h"
#include "cache/nonce_store.h"
#include "cache/redis_idempotency_store.h"
#include "common/crypto.h"
#include "common/event_loop.h"
#include "common/http_server.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "service/caller_policy.h"
#include "service/config_reload.h"
#include "service/event_stream.h"
#include "service/grpc_service.h"
#include "service/merchant_directory.h"
#include "service/payment_service.h"
#include "service/reconciler.h"
#include "service/webhooks.h"

ABSL_FLAG(
    std::string, grpc_listen, "0.0.0.0:50051",
    "gRPC address (host:port; port 0 picks a free one, printed on stdout)");
ABSL_FLAG(std::string, http_listen, "0.0.0.0:8080",
          "internal HTTP address for /metrics, /healthz and /readyz (empty "
          "disables it); never expose it to the internet");
ABSL_FLAG(std::string, webhook_listen, "",
          "public HTTP address for PayKKa's POST /webhooks/paykka, on its own "
          "thread, e.g. 0.0.0.0:8081 (empty: no webhooks)");
ABSL_FLAG(int64_t, http_max_header_bytes, 8192,
          "side listeners: request line plus headers above this are refused "
          "(400) and the connection closed");
ABSL_FLAG(absl::Duration, http_timeout, absl::Seconds(10),
          "side listeners: a connection idle (or a request stalled) this long "
          "is closed");
ABSL_FLAG(int64_t, max_open_files, 65536,
          "the soft file-descriptor limit is raised to this (never past the "
          "hard limit, never lowered); sockets to PayKKa, Redis and the side "
          "listeners share it");
ABSL_FLAG(
    bool, webhook_allow_unsigned, false,
    "accept unsigned webhooks for merchants without "
    "paykka_public_key_file (local sandbox only; fails closed otherwise)");
ABSL_FLAG(
    std::string, redis_url, "redis://127.0.0.1:6379",
    "idempotency store: redis://[:password@]host:port[/db], or 'memory' for an "
    "in-process store (single process only: not shared, lost on restart)");
ABSL_FLAG(
    std::string, redis_password_file, "",
    "file holding the Redis password (instead of putting it in --redis_url)");
ABSL_FLAG(std::string, merchants_config, "/etc/payorch/merchants.json",
          "merchant configuration (JSON; see README 'Configuration')");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(absl::Duration, idempotency_retention, absl::Hours(48),
          "how long a trans_id's record (and its stored response) is kept");
ABSL_FLAG(absl::Duration, lease, absl::Seconds(30),
          "in-flight claim lease: after a crash, a retry may take over after "
          "this long");
ABSL_FLAG(
    absl::Duration, drain_grace, absl::Seconds(20),
    "on SIGTERM: time in-flight calls get to finish before they are cancelled");
ABSL_FLAG(absl::Duration, drain_delay, absl::Seconds(5),
          "on SIGTERM: how long payorchd keeps serving fully while its health "
          "reports NOT_SERVING, before it stops accepting calls (a second "
          "signal ends the delay)");
ABSL_FLAG(absl::Duration, default_deadline, absl::Seconds(30),
          "deadline for calls that arrive without one");
ABSL_FLAG(
    absl::Duration, paykka_timeout, absl::Seconds(15),
    "upper bound of one PayKKa call (the caller's deadline is honoured too)");
ABSL_FLAG(int, cpu_threads, 2, "threads for CPU work (RSA signing)");
ABSL_FLAG(int64_t, cpu_queue_depth, 10000,
          "items waiting for the CPU threads beyond which a new call is "
          "refused with RESOURCE_EXHAUSTED / OVERLOADED + RetryInfo; a call "
          "whose deadline passes while it waits is answered DEADLINE_EXCEEDED "
          "with no Redis or PayKKa work (0: no bound)");
ABSL_FLAG(bool, cpu_queue_deadline_aware, true,
          "also refuse a new call (OVERLOADED) when calls recently waited for "
          "the CPU threads more than half its remaining deadline");
ABSL_FLAG(std::string, paykka_ca_file, "",
          "PEM bundle of CAs trusted for PayKKa's TLS certificate (empty: the "
          "system's)");
ABSL_FLAG(int64_t, max_in_flight, 20000,
          "gRPC calls in flight in this process; more are refused at once "
          "with RESOURCE_EXHAUSTED / OVERLOADED + RetryInfo (0: no cap)");
ABSL_FLAG(double, merchant_rate, 0,
          "calls per second admitted per merchant_id (token bucket); over it: "
          "RESOURCE_EXHAUSTED / OVERLOADED + RetryInfo (0: no limit)");
ABSL_FLAG(double, merchant_burst, 1000,
          "token bucket size for --merchant_rate");
ABSL_FLAG(int, grpc_max_message_bytes, 1 << 20,
          "largest gRPC request or response message");
ABSL_FLAG(int, grpc_max_concurrent_streams, 2000,
          "HTTP/2 streams one client connection may have open at once");
ABSL_FLAG(bool, paykka_allow_http, false,
          "accept plain http:// PayKKa base URLs (local sandbox only; "
          "otherwise every merchant's base_url must be https)");
ABSL_FLAG(int, max_host_connections, 0,
          "max connections to one PayKKa host (0 = unlimited, reused with "
          "keep-alive)");

ABSL_FLAG(bool, reconcile, true,
          "run the background reconciler that settles unknown PayKKa outcomes "
          "(Redis store only)");
ABSL_FLAG(absl::Duration, reconcile_interval, absl::Seconds(5),
          "pause between two reconciler passes over the unsettled index");
ABSL_FLAG(absl::Duration, reconcile_grace, absl::ZeroDuration(),
          "unsettled-index entries younger than this are left to their calls "
          "(0: --lease)");
ABSL_FLAG(absl::Duration, reconcile_max_backoff, absl::Seconds(30),
          "longest pause before the reconciler asks PayKKa again about one "
          "record");
ABSL_FLAG(int, redis_wait_replicas, -1,
          "replicas that must confirm a claim before PayKKa is called (WAIT); "
          "-1: one when the primary has a connected replica, 0: never wait");
ABSL_FLAG(absl::Duration, redis_wait_timeout, absl::Milliseconds(200),
          "how long a claim waits for that confirmation before the call fails "
          "closed (IDEMPOTENCY_STORE_UNAVAILABLE); below the 500 ms command "
          "timeout");
ABSL_FLAG(absl::Duration, event_retention, absl::Hours(24 * 7),
          "how long events are kept in each merchant's log (Redis Streams): "
          "WatchMerchantEvents resumes within it, OUT_OF_RANGE beyond");
ABSL_FLAG(absl::Duration, slow_consumer_timeout, absl::Seconds(30),
          "a stream whose reader takes no message for this long ends with "
          "RESOURCE_EXHAUSTED CONSUMER_TOO_SLOW");
ABSL_FLAG(int, max_streams, 20000,
          "open WatchOrder/WatchMerchantEvents streams per replica; beyond, "
          "RESOURCE_EXHAUSTED OVERLOADED");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain payorchd presents on the gRPC port (mTLS)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle that signs callers' client certificates; every "
          "caller must present one it verifies");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(60),
          "how often the --tls_* files are checked for a new certificate, key "
          "or CA (a renewed Kubernetes Secret); new connections get it, "
          "no restart (at least 1s)");
ABSL_FLAG(std::string, caller_policy, "",
          "caller policy (JSON: identity -> merchants and RPCs; README "
          "'Security'); re-read when it changes");
ABSL_FLAG(bool, insecure_plaintext, false,
          "serve gRPC in plaintext without caller authentication (local "
          "development only; logs a warning)");
ABSL_FLAG(std::string, health_listen, "",
          "plaintext gRPC address serving grpc.health.v1 only, for kubelet "
          "probes (empty: none)");
ABSL_FLAG(bool, config_reload, true,
          "re-read the merchant configuration, the key files it names and "
          "the caller policy when they change (checked every 0.5 s; an "
          "invalid file is rejected and the previous one keeps serving); "
          "false: read at start only (change them by rolling the pods)");
ABSL_FLAG(bool, reflection, false,
          "serve gRPC server reflection (v1alpha) on the gRPC port");

namespace payorch {
namespace {

constexpr const char* kServiceName = "payorch.v1.PaymentOrchestrator";
// Health of the mutating RPCs (CreateCheckout, ChargeRecurring, ...): SERVING
// while the replica is not draining and the idempotency store is reachable.
// "" and kServiceName follow draining only: queries need no Redis.
constexpr const char* kMutatingHealthService =
    "payorch.v1.PaymentOrchestrator/mutating";

// SIGTERM/SIGINT, phase one: health is NOT_SERVING (set by the caller) while
// the server keeps serving for `delay`, so that load balancers and clients
// move away; another signal ends the delay early.
void WaitDrainDelay(const sigset_t& signals, absl::Duration delay) {
  const absl::Time end = absl::Now() + delay;
  while (absl::Now() < end) {
    timespec wait = absl::ToTimespec(end - absl::Now());
    if (sigtimedwait(&signals, nullptr, &wait) > 0) return;
  }
}

// Applies PAYORCH_<FLAG> environment variables to flags, before the command
// line is parsed (so the command line wins).
void ApplyEnvironment() {
  for (const char* name : {"grpc_listen",
                           "http_listen",
                           "webhook_listen",
                           "webhook_allow_unsigned",
                           "http_max_header_bytes",
                           "http_timeout",
                           "max_open_files",
                           "redis_url",
                           "redis_password_file",
                           "merchants_config",
                           "log_level",
                           "idempotency_retention",
                           "lease",
                           "drain_grace",
                           "drain_delay",
                           "default_deadline",
                           "paykka_timeout",
                           "cpu_threads",
                           "max_host_connections",
                           "reconcile",
                           "reconcile_interval",
                           "reconcile_grace",
                           "reconcile_max_backoff",
                           "paykka_ca_file",
                           "paykka_allow_http",
                           "max_in_flight",
                           "merchant_rate",
                           "merchant_burst",
                           "grpc_max_message_bytes",
                           "grpc_max_concurrent_streams",
                           "redis_wait_replicas",
                           "redis_wait_timeout",
                           "tls_cert_file",
                           "tls_key_file",
                           "tls_client_ca_file",
                           "tls_reload_interval",
                           "caller_policy",
                           "insecure_plaintext",
                           "health_listen",
                           "config_reload",
                           "reflection"}) {
    std::string env = absl::StrCat("PAYORCH_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "payorchd: bad %s: %s\n", env.c_str(),
                   error.c_str());
      std::exit(2);
    }
  }
}

// Raises the soft fd limit to --max_open_files, within the hard limit.
// Message sizes, streams per connection and the keepalive policy: explicit,
// not gRPC's defaults.
void ApplyGrpcLimits(grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(
      absl::GetFlag(FLAGS_grpc_max_message_bytes));
  builder->SetMaxSendMessageSize(absl::GetFlag(FLAGS_grpc_max_message_bytes));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                              absl::GetFlag(FLAGS_grpc_max_concurrent_streams));
  // Server pings idle connections every 2 min; clients may ping every 10 s
  // at the fastest, also without calls; faster pings close the connection.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder->AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 600000);
}

// No core dumps: merchants' private keys are in this process's memory.
void DisableCoreDumps() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = static_cast<rlim_t>(
      std::max<int64_t>(0, absl::GetFlag(FLAGS_max_open_files)));
  if (rl.rlim_max != RLIM_INFINITY) want = std::min(want, rl.rlim_max);
  if (want > rl.rlim_cur) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "payorchd: %s: %s\n", what.c_str(),
               status.ToString().c_str());
  std::exit(1);
}

// Dies unless the --tls_* files are readable PEM, the key matches the
// certificate and the CA file holds a certificate. The key text is wiped.
void CheckTlsFiles(const std::string& cert, const std::string& key,
                   const std::string& ca) {
  auto cert_pem = ReadFile(cert);
  if (!cert_pem.ok()) Die("--tls_cert_file", cert_pem.status());
  auto key_pem = ReadFile(key);
  if (!key_pem.ok()) Die("--tls_key_file", key_pem.status());
  auto ca_pem = ReadFile(ca);
  if (!ca_pem.ok()) Die("--tls_client_ca_file", ca_pem.status());
  absl::Status s = CheckTlsPem(*cert_pem, *key_pem, *ca_pem);
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!s.ok()) Die("gRPC TLS files", s);
}

// mTLS server credentials (client certificates required and verified), or
// plaintext with --insecure_plaintext. The files are re-read every
// --tls_reload_interval, so a renewed certificate, key or CA (a Kubernetes
// Secret swaps them atomically) reaches new connections without a restart.
std::shared_ptr<grpc::ServerCredentials> GrpcCredentials() {
  if (absl::GetFlag(FLAGS_insecure_plaintext)) {
    std::fprintf(stderr,
                 "payorchd: WARNING: --insecure_plaintext: gRPC callers are "
                 "NOT authenticated and traffic is NOT encrypted. Local "
                 "development only.\n");
    return grpc::InsecureServerCredentials();
  }
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  const std::string ca = absl::GetFlag(FLAGS_tls_client_ca_file);
  if (cert.empty() || key.empty() || ca.empty()) {
    Die("gRPC TLS", absl::InvalidArgumentError(
                        "--tls_cert_file, --tls_key_file and "
                        "--tls_client_ca_file are required (or "
                        "--insecure_plaintext for local development)"));
  }
  // Unreadable or mismatched files stop the start here; later the watcher
  // keeps the last good material when an update cannot be read.
  CheckTlsFiles(cert, key, ca);
  const absl::Duration interval = absl::GetFlag(FLAGS_tls_reload_interval);
  if (interval < absl::Seconds(1)) {
    Die("--tls_reload_interval",
        absl::InvalidArgumentError("must be at least 1s"));
  }
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          key, cert, ca,
          static_cast<unsigned int>(absl::ToInt64Seconds(interval)));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

// The caller policy; null only with --insecure_plaintext and no policy.
std::unique_ptr<service::CallerPolicyWatcher> LoadCallerPolicy() {
  std::string path = absl::GetFlag(FLAGS_caller_policy);
  if (path.empty()) {
    if (absl::GetFlag(FLAGS_insecure_plaintext)) return nullptr;
    Die("--caller_policy",
        absl::InvalidArgumentError("required with mTLS (README 'Security')"));
  }
  auto watcher = service::CallerPolicyWatcher::Load(path);
  if (!watcher.ok()) Die("caller policy", watcher.status());
  std::fprintf(stderr, "payorchd: caller policy: %zu caller(s)\n",
               (*watcher)->Current()->size());
  return std::move(*watcher);
}

void ReloadCallerPolicy(service::CallerPolicyWatcher* watcher,
                        service::ConfigReloadReporter* reporter) {
  if (watcher == nullptr) return;
  auto before = watcher->Current();
  absl::Status s = watcher->ReloadIfChanged();
  if (!s.ok() || watcher->Current() != before) {
    reporter->Report("caller_policy", absl::GetFlag(FLAGS_caller_policy), s,
                     watcher->Current()->size());
  }
}

// The merchant configuration as at start and at every reload: the file and
// its keys (paykka::LoadMerchantConfigs), https only unless allowed.
absl::StatusOr<std::vector<paykka::MerchantConfig>> ValidatedMerchantConfigs(
    const std::string& path) {
  auto merchants = paykka::LoadMerchantConfigs(path);
  if (!merchants.ok() || absl::GetFlag(FLAGS_paykka_allow_http)) {
    return merchants;
  }
  if (absl::Status s = paykka::RequireHttps(*merchants); !s.ok()) return s;
  return merchants;
}

std::unique_ptr<service::MerchantConfigWatcher> LoadMerchants() {
  if (absl::GetFlag(FLAGS_paykka_allow_http)) {
    std::fprintf(stderr,
                 "payorchd: WARNING: --paykka_allow_http: PayKKa may be "
                 "reached over plain http (local sandbox only)\n");
  }
  auto watcher = service::MerchantConfigWatcher::Load(
      absl::GetFlag(FLAGS_merchants_config), &ValidatedMerchantConfigs,
      &paykka::MerchantConfigFiles);
  if (!watcher.ok()) Die("merchant configuration", watcher.status());
  std::fprintf(stderr, "payorchd: %zu merchant(s) configured\n",
               (*watcher)->directory().Snapshot()->size());
  return std::move(*watcher);
}

// Hot reload (--config_reload), on the 0.5 s ticker: the caller policy, and
// the merchant configuration and keys, each when its files changed.
void ReloadConfigs(service::CallerPolicyWatcher* policy,
                   service::MerchantConfigWatcher* merchants,
                   service::ConfigReloadReporter* reporter) {
  if (!absl::GetFlag(FLAGS_config_reload)) return;
  ReloadCallerPolicy(policy, reporter);
  service::MerchantReload reload = merchants->ReloadIfChanged();
  if (reload.result != service::MerchantReload::Result::kUnchanged) {
    reporter->Report("merchants", merchants->path(), reload.error,
                     reload.merchants);
  }
}

// A plaintext gRPC server with grpc.health.v1 only (kubelet probes cannot
// present a client certificate); null when --health_listen is empty.
std::unique_ptr<grpc::Server> StartHealthServer() {
  std::string listen = absl::GetFlag(FLAGS_health_listen);
  if (listen.empty()) return nullptr;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    Die("--health_listen",
        absl::UnavailableError(absl::StrCat("cannot listen on ", listen)));
  }
  auto host = ParseHostPort(listen);
  std::printf("listening health %s:%d\n", host.ok() ? host->first.c_str() : "?",
              port);
  return server;
}

// The background reconciler (service/reconciler.h) over `index`; null when
// disabled or without Redis.
std::unique_ptr<service::Reconciler> StartReconciler(
    EventLoop* loop, cache::UnsettledIndex* index,
    cache::IdempotencyStore* store, paykka::PaykkaClient* client,
    service::MerchantDirectory merchants, prometheus::Registry* registry) {
  if (index == nullptr || !absl::GetFlag(FLAGS_reconcile)) return nullptr;
  service::ReconcilerOptions options;
  options.lease = absl::GetFlag(FLAGS_lease);
  options.paykka_timeout = absl::GetFlag(FLAGS_paykka_timeout);
  options.retention = absl::GetFlag(FLAGS_idempotency_retention);
  options.scan_interval = absl::GetFlag(FLAGS_reconcile_interval);
  options.grace = std::max(absl::GetFlag(FLAGS_reconcile_grace), options.lease);
  options.max_backoff = absl::GetFlag(FLAGS_reconcile_max_backoff);
  auto reconciler = std::make_unique<service::Reconciler>(
      loop, index, store,
      [client, merchants](const cache::UnsettledEntry& entry,
                          absl::Time deadline, auto done) {
        service::FindStoredOutcome(client, merchants, entry, deadline,
                                   std::move(done));
      },
      registry, options);
  reconciler->Start();
  return reconciler;
}

HttpServerLimits SideListenerLimits() {
  HttpServerLimits limits;
  limits.max_header_bytes = absl::GetFlag(FLAGS_http_max_header_bytes);
  limits.timeout = absl::GetFlag(FLAGS_http_timeout);
  return limits;
}

// Events: the per-merchant logs in Redis (appends over the shared client),
// and the hub that follows them for this replica's streams on a loop and a
// Redis connection of its own (XREAD BLOCK holds its connection).
struct Events {
  std::unique_ptr<EventLoop> loop;
  std::shared_ptr<cache::RedisClient> blocking;
  std::unique_ptr<cache::EventLog> log;
  std::unique_ptr<service::EventHub> hub;
  std::unique_ptr<service::EventRecorder> recorder;

  ~Events() {
    // The hub lives on its loop: destroy it there, then the client (which
    // needs the loop running), then the loop.
    if (hub != nullptr) {
      std::promise<void> done;
      loop->Post([this, &done] {
        hub.reset();
        done.set_value();
      });
      done.get_future().wait();
    }
    blocking.reset();
  }
};

std::unique_ptr<Events> StartEvents(
    std::shared_ptr<cache::RedisClient> shared,
    cache::RedisClientOptions client_options, paykka::PaykkaClient* paykka,
    const service::MerchantDirectory* merchants) {
  auto events = std::make_unique<Events>();
  auto loop = EventLoop::Start("payorch-events");
  if (!loop.ok()) Die("event loop", loop.status());
  events->loop = std::move(*loop);
  service::EventHubOptions hub_options;
  hub_options.slow_consumer_timeout =
      absl::GetFlag(FLAGS_slow_consumer_timeout);
  hub_options.max_streams = absl::GetFlag(FLAGS_max_streams);
  auto target = cache::ParseRedisUrl(client_options.url);
  hub_options.tail.group_by_slot = target.ok() && target->cluster;
  // A blocked XREAD is a long command on this connection only.
  client_options.command_timeout = hub_options.tail.block + absl::Seconds(2);
  client_options.metrics = nullptr;
  client_options.observer = nullptr;
  auto blocking =
      cache::RedisClient::Create(events->loop.get(), std::move(client_options));
  if (!blocking.ok()) Die("Redis (events)", blocking.status());
  events->blocking = std::move(*blocking);
  cache::EventLogOptions log_options;
  log_options.retention = absl::GetFlag(FLAGS_event_retention);
  events->log =
      std::make_unique<cache::EventLog>(std::move(shared), log_options);
  events->hub = std::make_unique<service::EventHub>(
      events->loop.get(), events->log.get(), events->blocking, merchants,
      hub_options);
  events->recorder = std::make_unique<service::EventRecorder>(
      paykka, merchants, events->log.get(), &RealClock::Get(),
      absl::GetFlag(FLAGS_paykka_timeout));
  std::fprintf(stderr, "payorchd: events in Redis Streams (retention %s)\n",
               absl::FormatDuration(log_options.retention).c_str());
  return events;
}

// The internal listener: /metrics, /healthz, /readyz.
std::unique_ptr<HttpServer> StartInternalHttp(
    EventLoop* loop, std::shared_ptr<prometheus::Registry> registry,
    const std::atomic<bool>* ready) {
  std::string listen = absl::GetFlag(FLAGS_http_listen);
  if (listen.empty()) return nullptr;
  auto host_port = ParseHostPort(listen);
  if (!host_port.ok()) Die("--http_listen", host_port.status());
  absl::flat_hash_map<std::string, HttpHandler> routes;
  routes["/metrics"] = [registry](HttpServerRequest, HttpResponder respond) {
    prometheus::TextSerializer serializer;
    std::move(respond)(
        HttpServerResponse{200,
                           "text/plain; version=0.0.4",
                           serializer.Serialize(registry->Collect()),
                           {}});
  };
  routes["/healthz"] = [](HttpServerRequest, HttpResponder respond) {
    std::move(respond)(HttpServerResponse{200, "text/plain", "ok\n", {}});
  };
  routes["/readyz"] = [ready](HttpServerRequest, HttpResponder respond) {
    bool ok = ready->load();
    std::move(respond)(HttpServerResponse{
        ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n", {}});
  };
  HttpServerLimits limits = SideListenerLimits();
  limits.max_body_bytes = 4096;  // GET only
  auto started = HttpServer::Start(loop, host_port->first, host_port->second,
                                   std::move(routes), limits);
  if (!started.ok()) Die("HTTP listener", started.status());
  std::printf("listening http %s:%d\n", host_port->first.c_str(),
              (*started)->port());
  return std::move(*started);
}

// The public webhook listener: POST /webhooks/paykka only, 64 KiB bodies.
std::unique_ptr<HttpServer> StartWebhookHttp(
    EventLoop* loop, service::WebhookHandler* webhooks) {
  std::string listen = absl::GetFlag(FLAGS_webhook_listen);
  if (listen.empty()) return nullptr;
  auto host_port = ParseHostPort(listen);
  if (!host_port.ok()) Die("--webhook_listen", host_port.status());
  absl::flat_hash_map<std::string, HttpHandler> routes;
  routes["/webhooks/paykka"] = [webhooks](HttpServerRequest req,
                                          HttpResponder respond) {
    webhooks->Handle(std::move(req), std::move(respond));
  };
  HttpServerLimits limits = SideListenerLimits();
  limits.max_body_bytes = paykka::kMaxNotificationBody;
  auto started = HttpServer::Start(loop, host_port->first, host_port->second,
                                   std::move(routes), limits);
  if (!started.ok()) Die("webhook listener", started.status());
  std::printf("listening webhooks %s:%d\n", host_port->first.c_str(),
              (*started)->port());
  return std::move(*started);
}

int Run() {
  // Signals are taken by sigwait() in this thread only: block them before
  // any other thread starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  DisableCoreDumps();
  RaiseFileLimit();

  {
    service::PaymentServiceOptions check;
    check.lease = absl::GetFlag(FLAGS_lease);
    check.retention = absl::GetFlag(FLAGS_idempotency_retention);
    check.paykka_timeout = absl::GetFlag(FLAGS_paykka_timeout);
    if (absl::Status s = service::CheckPaymentServiceOptions(check); !s.ok()) {
      Die("flags", s);
    }
  }
  std::unique_ptr<service::MerchantConfigWatcher> merchants = LoadMerchants();

  auto log_level = service::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!log_level.has_value()) {
    Die("--log_level",
        absl::InvalidArgumentError("expected debug, info, warning or error"));
  }
  service::JsonLineLogger request_log(stderr, *log_level);
  auto registry = std::make_shared<prometheus::Registry>();

  auto loop = EventLoop::Start("payorch-io");
  if (!loop.ok()) Die("event loop", loop.status());
  // Redis gets its own loop thread: its replies must not queue behind
  // thousands of PayKKa sockets, or claims would time out under load.
  auto redis_loop = EventLoop::Start("payorch-redis");
  if (!redis_loop.ok()) Die("event loop", redis_loop.status());
  WorkerPool cpu(std::max(1, absl::GetFlag(FLAGS_cpu_threads)),
                 static_cast<size_t>(std::max<int64_t>(
                     0, absl::GetFlag(FLAGS_cpu_queue_depth))),
                 &RealClock::Get(),
                 absl::GetFlag(FLAGS_cpu_queue_deadline_aware));

  paykka::CurlMultiTransport::Options transport_options;
  transport_options.max_host_connections =
      absl::GetFlag(FLAGS_max_host_connections);
  transport_options.ca_file = absl::GetFlag(FLAGS_paykka_ca_file);
  auto transport =
      paykka::CurlMultiTransport::Create(loop->get(), transport_options);
  if (!transport.ok()) Die("HTTP transport", transport.status());
  // traceparent to PayKKa, per-endpoint metrics, one debug line per call.
  paykka::InstrumentedTransport instrumented(
      transport->get(), registry.get(),
      [&request_log](const paykka::PaykkaCallRecord& call) {
        request_log.LogPaykkaCall(call);
      });
  auto paykka_client =
      paykka::MakeHttpPaykkaClient(loop->get(), &cpu, &instrumented);
  if (!paykka_client.ok()) Die("PayKKa client", paykka_client.status());

  std::unique_ptr<cache::IdempotencyStore> store;
  std::unique_ptr<cache::UnsettledIndex> unsettled_index;
  std::unique_ptr<cache::NonceStore> nonces;
  std::shared_ptr<cache::RedisClient> redis_client;
  cache::RedisClientOptions redis_client_options;
  std::string redis_url = absl::GetFlag(FLAGS_redis_url);
  if (redis_url == "memory") {
    std::fprintf(
        stderr,
        "payorchd: WARNING: idempotency store is IN MEMORY: it is not shared "
        "between "
        "replicas and is lost on restart. Use --redis_url in production.\n");
    cache::InMemoryIdempotencyStoreOptions options;
    options.retention = absl::GetFlag(FLAGS_idempotency_retention);
    store = std::make_unique<cache::InMemoryIdempotencyStore>(RealClock::Get(),
                                                              options);
    nonces = std::make_unique<cache::InMemoryNonceStore>();
  } else {
    cache::RedisIdempotencyStoreOptions options;
    options.client.url = redis_url;
    // The password comes from a file or PAYORCH_REDIS_PASSWORD (a Kubernetes
    // Secret reference), never from a flag that would show in `ps`.
    if (const char* password = std::getenv("PAYORCH_REDIS_PASSWORD");
        password != nullptr) {
      options.client.password = password;
    }
    if (std::string file = absl::GetFlag(FLAGS_redis_password_file);
        !file.empty()) {
      auto password = ReadFile(file);
      if (!password.ok()) Die("Redis password file", password.status());
      options.client.password =
          std::string(absl::StripTrailingAsciiWhitespace(*password));
    }
    options.retention = absl::GetFlag(FLAGS_idempotency_retention);
    options.replication.replicas = absl::GetFlag(FLAGS_redis_wait_replicas);
    options.replication.timeout = absl::GetFlag(FLAGS_redis_wait_timeout);
    options.client.metrics = registry.get();
    options.client.observer =
        [&request_log](const cache::RedisCommandRecord& c) {
          request_log.LogRedisCommand(c);
        };
    auto redis =
        cache::RedisIdempotencyStore::Create(redis_loop->get(), options);
    if (!redis.ok()) Die("Redis idempotency store", redis.status());
    cache::UnsettledIndexOptions index_options;
    index_options.retention = options.retention;
    unsettled_index = std::make_unique<cache::UnsettledIndex>(
        (*redis)->client(), index_options);
    nonces = std::make_unique<cache::RedisNonceStore>((*redis)->client());
    redis_client = (*redis)->client();
    redis_client_options = options.client;
    store = std::move(*redis);
    // Give the first connection a moment so that the first calls do not fail
    // closed needlessly; if Redis is not there, start anyway (NOT_SERVING).
    absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (!store->Healthy() && absl::Now() < give_up)
      absl::SleepFor(absl::Milliseconds(10));
    if (!store->Healthy()) {
      std::fprintf(
          stderr,
          "payorchd: Redis not reachable yet; mutating calls fail closed\n");
    }
    std::fprintf(stderr,
                 "payorchd: idempotency store is Redis (retention %s)\n",
                 absl::FormatDuration(options.retention).c_str());
  }

  service::PaymentServiceOptions service_options;
  service_options.lease = absl::GetFlag(FLAGS_lease);
  service_options.retention = absl::GetFlag(FLAGS_idempotency_retention);
  service_options.paykka_timeout = absl::GetFlag(FLAGS_paykka_timeout);
  // A Begin whose reply was lost is sent again after a short delay.
  service_options.timers = redis_loop->get();
  service::MerchantDirectory merchant_registry = merchants->directory();
  service::PaymentService payments(paykka_client->get(), store.get(),
                                   merchant_registry, &RealClock::Get(),
                                   service_options);
  std::unique_ptr<Events> events;
  if (redis_client != nullptr) {
    events = StartEvents(redis_client, redis_client_options,
                         paykka_client->get(), &merchant_registry);
  }
  std::unique_ptr<service::Reconciler> reconciler =
      StartReconciler(loop->get(), unsettled_index.get(), store.get(),
                      paykka_client->get(), merchant_registry, registry.get());
  service::GrpcServiceOptions grpc_options;
  grpc_options.default_deadline = absl::GetFlag(FLAGS_default_deadline);
  service::LoadShedderOptions shed_options;
  shed_options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  shed_options.merchant_rate = absl::GetFlag(FLAGS_merchant_rate);
  shed_options.merchant_burst = absl::GetFlag(FLAGS_merchant_burst);
  service::LoadShedder shedder(shed_options);
  grpc_options.shedder = &shedder;
  grpc_options.cpu = &cpu;
  std::unique_ptr<service::CallerPolicyWatcher> policy = LoadCallerPolicy();
  grpc_options.policy = policy.get();
  grpc_options.events = events != nullptr ? events->hub.get() : nullptr;
  service::PaymentOrchestratorService grpc_service(&payments, &request_log,
                                                   registry, grpc_options);

  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<grpc::Server> health_server = StartHealthServer();
  if (absl::GetFlag(FLAGS_reflection)) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_grpc_listen), GrpcCredentials(),
                           &grpc_port);
  builder.RegisterService(&grpc_service);
  ApplyGrpcLimits(&builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    Die("gRPC server",
        absl::UnavailableError(absl::StrCat("cannot listen on ",
                                            absl::GetFlag(FLAGS_grpc_listen))));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();

  // Health per capability: "" and kServiceName (readiness) follow draining
  // only; kMutatingHealthService also follows the idempotency store (the
  // mutating RPCs fail closed on their own without it). Checked every 500 ms
  // on the loop; each change is logged and exported.
  std::atomic<bool> draining{false};
  std::atomic<bool> ready{false};
  prometheus::Gauge& redis_up =
      prometheus::BuildGauge()
          .Name("payorch_redis_up")
          .Help("1 while the idempotency store (Redis) is reachable.")
          .Register(*registry)
          .Add({});
  std::atomic<bool> mutating{false};
  auto& serving_family = prometheus::BuildGauge()
                             .Name("payorch_health_serving")
                             .Help(
                                 "1 while the named capability is SERVING: "
                                 "ready (not draining), mutating (ready and "
                                 "the idempotency store reachable).")
                             .Register(*registry);
  prometheus::Gauge& ready_gauge =
      serving_family.Add({{"capability", "ready"}});
  prometheus::Gauge& mutating_gauge =
      serving_family.Add({{"capability", "mutating"}});
  auto update_health = [&] {
    redis_up.Set(store->Healthy() ? 1 : 0);
    const bool now_ready = !draining.load();
    const bool now_mutating = now_ready && store->Healthy();
    if (now_ready != ready.exchange(now_ready)) {
      std::fprintf(stderr, "payorchd: readiness %s\n",
                   now_ready ? "SERVING" : "NOT_SERVING");
    }
    if (now_mutating != mutating.exchange(now_mutating)) {
      std::fprintf(stderr, "payorchd: health %s %s (idempotency store %s)\n",
                   kMutatingHealthService,
                   now_mutating ? "SERVING" : "NOT_SERVING",
                   store->Healthy() ? "reachable" : "unreachable");
    }
    ready_gauge.Set(now_ready ? 1 : 0);
    mutating_gauge.Set(now_mutating ? 1 : 0);
    for (grpc::HealthCheckServiceInterface* h :
         {health, health_server != nullptr
                      ? health_server->GetHealthCheckService()
                      : nullptr}) {
      if (h == nullptr) continue;
      h->SetServingStatus("", now_ready);
      h->SetServingStatus(kServiceName, now_ready);
      h->SetServingStatus(kMutatingHealthService, now_mutating);
    }
  };
  update_health();
  // The periodic check runs on the loop until `alive` is cleared; the flag is
  // shared so that a timer firing late never touches this stack frame.
  auto alive = std::make_shared<std::atomic<bool>>(true);
  struct Ticker {
    EventLoop* loop;
    std::shared_ptr<std::atomic<bool>> alive;
    std::function<void()> check;
    void operator()() const {
      if (!alive->load()) return;
      check();
      loop->RunAfter(absl::Milliseconds(500), *this);
    }
  };
  service::ConfigReloadReporter reloads(&request_log, registry.get());
  (*loop)->Post(Ticker{loop->get(), alive, [&, policy = policy.get()] {
                         update_health();
                         ReloadConfigs(policy, merchants.get(), &reloads);
                       }});

  std::unique_ptr<HttpServer> http =
      StartInternalHttp(loop->get(), registry, &ready);
  // Webhooks: the public listener, on a thread of their own (parsing and RSA
  // verification never delay the loop that drives libcurl and the timers).
  auto webhook_loop = EventLoop::Start("payorch-webhook");
  if (!webhook_loop.ok()) Die("event loop", webhook_loop.status());
  service::WebhookOptions webhook_options;
  webhook_options.allow_unsigned = absl::GetFlag(FLAGS_webhook_allow_unsigned);
  webhook_options.nonces = nonces.get();
  webhook_options.events = events != nullptr ? events->recorder.get() : nullptr;
  if (webhook_options.allow_unsigned) {
    std::fprintf(stderr,
                 "payorchd: WARNING: --webhook_allow_unsigned: unsigned "
                 "webhooks are accepted (local sandbox only)\n");
  }
  service::WebhookHandler webhooks(merchant_registry, registry.get(),
                                   &RealClock::Get(), webhook_options);
  std::unique_ptr<HttpServer> webhook_http =
      StartWebhookHttp(webhook_loop->get(), &webhooks);
  auto grpc_host = ParseHostPort(absl::GetFlag(FLAGS_grpc_listen));
  std::printf("listening grpc %s:%d\n",
              grpc_host.ok() ? grpc_host->first.c_str() : "?", grpc_port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  absl::Duration grace = absl::GetFlag(FLAGS_drain_grace);
  absl::Duration delay = absl::GetFlag(FLAGS_drain_delay);
  std::fprintf(stderr,
               "payorchd: %s: draining (NOT_SERVING, serving for %s more, then "
               "grace %s)\n",
               strsignal(sig), absl::FormatDuration(delay).c_str(),
               absl::FormatDuration(grace).c_str());
  draining.store(true);
  update_health();
  WaitDrainDelay(signals, delay);
  // Phase two: stop accepting new calls (GOAWAY: a call the server has not
  // taken is refused with UNAVAILABLE, which gRPC retries transparently),
  // let in-flight ones finish until the grace period ends, then cancel what
  // is left.
  std::fprintf(stderr, "payorchd: no longer accepting calls\n");
  server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  if (health_server != nullptr) health_server->Shutdown();
  // Stop the health ticker and wait for a tick that may be running.
  alive->store(false);
  std::promise<void> barrier;
  (*loop)->Post([&barrier] { barrier.set_value(); });
  barrier.get_future().wait();
  http.reset();
  webhook_http.reset();
  server.reset();
  health_server.reset();
  std::fprintf(stderr, "payorchd: stopped\n");
  // The service, the store and the HTTP transport go before the loop they use
  // (reverse declaration order).
  return 0;
}

}  // namespace
}  // namespace payorch

int main(int argc, char** argv) {
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles,
  // which costs measurably on the request path; payorch has no nested locks.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "payorchd: payment orchestration gRPC server (see README)");
  payorch::ApplyEnvironment();
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(
        stderr, "payorchd: unexpected argument '%s' (flags are --name=value)\n",
        positional[1]);
    return 2;
  }
  return payorch::Run();
}
