#include "tests/integration/stack.h"

#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace payorch::testing {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads a field ("Threads:", "VmRSS:") from /proc/<pid>/status.
long ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field)) {
      std::vector<std::string> parts =
          absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      return parts.size() >= 2 ? std::stol(parts[1]) : -1;
    }
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Stack>> Stack::Start(StackOptions options) {
  std::unique_ptr<Stack> stack(new Stack());
  stack->options_ = std::move(options);
  const TempDir& dir = stack->dir_;

  // Keys for this run only.
  auto keys = RunCommand(absl::StrCat(
      "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ",
      dir.File("merchant.pem"), " && openssl pkey -in ",
      dir.File("merchant.pem"), " -pubout -out ",
      dir.File("merchant_pub.pem")));
  if (!keys.ok()) return keys.status();

  if (stack->options_.redis) {
    if (auto st = stack->StartRedis(); !st.ok()) return st;
  }
  if (auto st = stack->StartSandbox(); !st.ok()) return st;

  nlohmann::json merchants = {{"merchants", nlohmann::json::array()}};
  for (auto [merchant, app] :
       {std::pair{kMerchantId, kAppId}, std::pair{kMerchantId2, kAppId2}}) {
    merchants["merchants"].push_back(
        {{"merchant_id", merchant},
         {"app_id", app},
         {"private_key_file", "merchant.pem"},  // next to the config
         {"paykka_public_key_file", dir.File("platform_pub.pem")},
         {"verify_response_signatures",
          stack->options_.verify_response_signatures},
         {"client_key", kClientKey},
         {"base_url", stack->paykka_url_}});
    for (const auto& [key, value] : stack->options_.merchant_settings.items()) {
      merchants["merchants"].back()[key] = value;
    }
  }
  if (auto st = stack->PublishMerchantFiles(merchants.dump(2),
                                            ReadAll(dir.File("merchant.pem")));
      !st.ok()) {
    return st;
  }
  dir.Write("policy.json", stack->options_.caller_policy.empty()
                               ? DefaultCallerPolicy()
                               : stack->options_.caller_policy);
  stack->replicas_.resize(stack->options_.replicas);
  for (int i = 0; i < stack->options_.replicas; ++i) {
    if (auto st = stack->StartPayorchd(i); !st.ok()) return st;
  }
  return stack;
}

Stack::~Stack() {
  for (auto& r : replicas_) r.process.reset();
  relay_.reset();
  sandbox_.reset();
  redis_.reset();
  cluster_.reset();
}

absl::Status Stack::StartSandbox() {
  nlohmann::json config = {{"merchants", nlohmann::json::array()}};
  for (auto [merchant, app] :
       {std::pair{kMerchantId, kAppId}, std::pair{kMerchantId2, kAppId2}}) {
    config["merchants"].push_back(
        {{"merchant_id", merchant},
         {"app_id", app},
         {"public_key_file", dir_.File("merchant_pub.pem")},
         {"client_key", kClientKey}});
  }
  dir_.Write("sandbox.json", config.dump(2));
  std::vector<std::string> argv = {
      BinaryPath("paykka-sandbox"), "--listen=127.0.0.1:0",
      "--config=" + dir_.File("sandbox.json"),
      "--platform-public-key-out=" + dir_.File("platform_pub.pem")};
  if (options_.paykka_https) {
    auto certs = MakeTestCertificates(dir_.File("tls"));
    if (!certs.ok()) return certs.status();
    ca_file_ = certs->ca_file;
    argv.push_back("--tls-listen=127.0.0.1:0");
    argv.push_back("--tls-cert=" + certs->cert_file);
    argv.push_back("--tls-key=" + certs->key_file);
  }
  for (const auto& a : options_.sandbox_args) argv.push_back(a);
  auto process = Subprocess::Start(argv, dir_.File("sandbox.log"));
  if (!process.ok()) return process.status();
  sandbox_ = std::move(*process);
  auto line = sandbox_->WaitForLine("listening ", absl::Seconds(20));
  if (!line.ok()) {
    return absl::InternalError(
        absl::StrCat("sandbox did not start: ", line.status().ToString(), "\n",
                     ReadAll(dir_.File("sandbox.log"))));
  }
  sandbox_url_ =
      absl::StrCat("http://", line->substr(std::string("listening ").size()));
  return SetUpPaykkaUrl();
}

absl::Status Stack::SetUpPaykkaUrl() {
  paykka_url_ = sandbox_url_;
  if (options_.paykka_https) {
    auto line = sandbox_->WaitForLine("https listening ", absl::Seconds(20));
    if (!line.ok()) return line.status();
    paykka_url_ = absl::StrCat(
        "https://", line->substr(std::string("https listening ").size()));
  }
  if (options_.paykka_rtt <= absl::ZeroDuration()) return absl::OkStatus();
  size_t colon = paykka_url_.rfind(':');
  int port = 0;
  if (!absl::SimpleAtoi(paykka_url_.substr(colon + 1), &port)) {
    return absl::InternalError("no port in " + paykka_url_);
  }
  auto relay = RttRelay::Start(port, options_.paykka_rtt);
  if (!relay.ok()) return relay.status();
  relay_ = std::move(*relay);
  paykka_url_ = absl::StrCat(paykka_url_.substr(0, colon + 1), relay_->port());
  return absl::OkStatus();
}

bool StackOptions::RedisClusterFromEnvironment() {
  const char* mode = std::getenv("PAYORCH_TEST_REDIS");
  return mode != nullptr && std::string(mode) == "cluster";
}

absl::Status Stack::StartRedis() {
  if (cluster_ != nullptr) {
    for (int i = 0; i < cluster_->size(); ++i) {
      if (cluster_->node(i).running()) continue;
      if (absl::Status s = cluster_->node(i).Restart(); !s.ok()) return s;
    }
    return cluster_->WaitUntilStable(absl::Seconds(30), false);
  }
  if (options_.redis_cluster) {
    auto cluster = RedisCluster::Start();
    if (!cluster.ok()) return cluster.status();
    cluster_ = std::move(*cluster);
    return absl::OkStatus();
  }
  if (redis_ != nullptr) return redis_->Restart();
  auto redis = RedisServer::Start();
  if (!redis.ok()) return redis.status();
  redis_ = std::move(*redis);
  return absl::OkStatus();
}

absl::Status Stack::StopRedis() {
  if (cluster_ != nullptr) {
    for (int i = 0; i < cluster_->size(); ++i) {
      if (absl::Status s = cluster_->node(i).Stop(SIGKILL); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  return redis_ != nullptr ? redis_->Stop(SIGKILL) : absl::OkStatus();
}

absl::StatusOr<std::string> Stack::RedisKeys(const std::string& pattern) const {
  std::vector<int> ports;
  if (cluster_ != nullptr) {
    for (int i = 0; i < cluster_->size(); ++i) {
      if (cluster_->node(i).running())
        ports.push_back(cluster_->node(i).port());
    }
  } else if (redis_ != nullptr) {
    ports.push_back(redis_->port());
  }
  std::string keys;
  for (int port : ports) {
    auto out = RunCommand(absl::StrCat("redis-cli -p ", port,
                                       " --scan --pattern '", pattern, "'"));
    if (!out.ok()) return out.status();
    keys += *out;
  }
  return keys;
}

std::string Stack::DefaultCallerPolicy() {
  nlohmann::json policy = {
      {"callers",
       {{{"identity", kAdminIdentity},
         {"merchants", {"*"}},
         {"methods", {"*"}}},
        {{"identity", kCheckoutIdentity},
         {"merchants", {kMerchantId}},
         {"methods", {"CreateCheckout", "GetSessionStatus", "GetOrder"}}}}}};
  return policy.dump(2);
}

absl::Status Stack::AddCallerAuthFlags(std::vector<std::string>* argv) const {
  if (options_.insecure_plaintext) {
    argv->push_back("--insecure_plaintext");
    return absl::OkStatus();
  }
  auto certs = SharedMtlsCertificates();
  if (!certs.ok()) return certs.status();
  argv->push_back("--tls_cert_file=" + certs->server_cert_file);
  argv->push_back("--tls_key_file=" + certs->server_key_file);
  argv->push_back("--tls_client_ca_file=" + certs->ca_file);
  argv->push_back("--caller_policy=" + caller_policy_file());
  return absl::OkStatus();
}

absl::Status Stack::StartPayorchd(int i) {
  Replica& r = replicas_[i];
  r.process.reset();
  // With keep_ports a restarted replica listens where it did (decided before
  // the targets are cleared to be read again from its "listening" lines).
  const bool same = options_.keep_ports && !r.grpc_target.empty();
  auto listen = [same](const std::string& previous) {
    return same ? previous : std::string("127.0.0.1:0");
  };
  std::vector<std::string> argv = {
      BinaryPath("payorchd"),
      "--grpc_listen=" + listen(r.grpc_target),
      "--http_listen=" + listen(r.http_target),
      "--webhook_listen=" + listen(r.webhook_target),
      "--health_listen=" + listen(r.health_target),
      "--merchants_config=" + merchants_config(),
      "--paykka_timeout=3s",
      "--drain_delay=0s",  // tests that drain say how long
      !options_.redis       ? std::string("--redis_url=memory")
      : cluster_ != nullptr ? "--redis_url=" + cluster_->url()
                            : "--redis_url=" + redis_->url()};
  if (!ca_file_.empty()) argv.push_back("--paykka_ca_file=" + ca_file_);
  if (!absl::StartsWith(paykka_url_, "https://")) {
    argv.push_back("--paykka_allow_http");  // the sandbox's plain listener
  }
  if (absl::Status s = AddCallerAuthFlags(&argv); !s.ok()) return s;
  for (const auto& a : options_.payorchd_args) argv.push_back(a);
  r.grpc_target.clear();
  r.http_target.clear();
  r.webhook_target.clear();
  r.health_target.clear();
  r.log_path = dir_.File(absl::StrCat("payorchd-", i, ".log"));
  auto process = Subprocess::Start(argv, r.log_path);
  if (!process.ok()) return process.status();
  r.process = std::move(*process);
  while (r.grpc_target.empty() || r.http_target.empty() ||
         r.webhook_target.empty()) {
    auto line = r.process->WaitForLine("listening ", absl::Seconds(20));
    if (!line.ok()) {
      return absl::InternalError(
          absl::StrCat("payorchd did not start: ", line.status().ToString(),
                       "\n", ReadAll(r.log_path)));
    }
    if (absl::StartsWith(*line, "listening grpc "))
      r.grpc_target = line->substr(15);
    if (absl::StartsWith(*line, "listening http "))
      r.http_target = line->substr(15);
    if (absl::StartsWith(*line, "listening webhooks "))
      r.webhook_target = line->substr(19);
    if (absl::StartsWith(*line, "listening health "))
      r.health_target = line->substr(17);
  }
  return absl::OkStatus();
}

absl::Status Stack::KillPayorchd(int i, int signal) {
  auto st = replicas_[i].process->Signal(signal, true, absl::Seconds(30));
  return st.ok() ? absl::OkStatus() : st.status();
}

absl::StatusOr<int> Stack::PayorchdExitStatus(int i, absl::Duration timeout) {
  return replicas_[i].process->Wait(timeout);
}

pid_t Stack::payorchd_pid(int i) const { return replicas_[i].process->pid(); }
std::string Stack::grpc_target(int i) const { return replicas_[i].grpc_target; }
std::string Stack::http_target(int i) const { return replicas_[i].http_target; }
std::string Stack::webhook_target(int i) const {
  return replicas_[i].webhook_target;
}
int Stack::ThreadCount(int i) const {
  return static_cast<int>(ProcStatus(payorchd_pid(i), "Threads:"));
}
long Stack::RssKb(int i) const { return ProcStatus(payorchd_pid(i), "VmRSS:"); }
std::string Stack::PayorchdLog(int i) const {
  return ReadAll(replicas_[i].log_path);
}

std::string Stack::merchants_config() const {
  return dir_.File(options_.secret_volume ? "secret/merchants.json"
                                          : "merchants.json");
}

absl::Status Stack::PublishMerchantFiles(const std::string& merchants_json,
                                         const std::string& key_pem) {
  merchants_json_ = merchants_json;
  merchant_key_pem_ = key_pem;
  const int version = ++merchant_files_version_;
  const std::pair<const char*, const std::string*> files[] = {
      {"merchants.json", &merchants_json}, {"merchant.pem", &key_pem}};
  auto move = [](const std::string& from, const std::string& to) {
    return rename(from.c_str(), to.c_str()) == 0
               ? absl::OkStatus()
               : absl::InternalError("rename " + from + " -> " + to);
  };
  if (!options_.secret_volume) {
    for (const auto& [name, text] : files) {
      dir_.Write(absl::StrCat(name, ".new"), *text);
      absl::Status s =
          move(dir_.File(absl::StrCat(name, ".new")), dir_.File(name));
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  // secret/..2026_11_30_v<N>/{files}, then ..data -> it by one rename.
  const std::string versioned = absl::StrCat("..2026_11_30_v", version);
  auto made =
      RunCommand(absl::StrCat("mkdir -p ", dir_.File("secret/"), versioned));
  if (!made.ok()) return made.status();
  for (const auto& [name, text] : files) {
    dir_.Write(absl::StrCat("secret/", versioned, "/", name), *text);
    const std::string link = dir_.File(absl::StrCat("secret/", name));
    if (version == 1 &&
        symlink(absl::StrCat("..data/", name).c_str(), link.c_str()) != 0) {
      return absl::InternalError("symlink " + link);
    }
  }
  const std::string tmp = dir_.File("secret/..data_tmp");
  if (symlink(versioned.c_str(), tmp.c_str()) != 0) {
    return absl::InternalError("symlink " + tmp);
  }
  if (absl::Status s = move(tmp, dir_.File("secret/..data")); !s.ok()) return s;
  if (version == 1) return absl::OkStatus();
  auto removed = RunCommand(absl::StrCat("rm -rf ", dir_.File("secret/"),
                                         "..2026_11_30_v", version - 1));
  return removed.ok() ? absl::OkStatus() : removed.status();
}

absl::StatusOr<std::pair<std::string, int>> Stack::NewMerchantKey() const {
  const std::string name =
      absl::StrCat("merchant-next-", merchant_files_version_);
  auto keys = RunCommand(absl::StrCat(
      "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ",
      dir_.File(name + ".pem"), " && openssl pkey -in ",
      dir_.File(name + ".pem"), " -pubout"));
  if (!keys.ok()) return keys.status();
  int index = -1;
  for (const char* merchant : {kMerchantId, kMerchantId2}) {
    auto added = SandboxCall(
        "POST", absl::StrCat("/sandbox/merchants/", merchant, "/public-keys"),
        {{"public_key", *keys}});
    if (!added.ok()) return added.status();
    index = (*added)["index"].get<int>();
  }
  return std::make_pair(ReadAll(dir_.File(name + ".pem")), index);
}

std::string Stack::health_target(int i) const {
  return replicas_[i].health_target;
}

std::shared_ptr<grpc::Channel> Stack::Channel(int i) const {
  return ChannelAs("admin", i);
}

std::shared_ptr<grpc::Channel> Stack::ChannelAs(const std::string& name,
                                                int i) const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return grpc::CreateCustomChannel(grpc_target(i), CallerCredentials(name),
                                   args);
}

std::shared_ptr<grpc::ChannelCredentials> Stack::CallerCredentials(
    const std::string& name) const {
  auto certs = SharedMtlsCertificates();
  if (options_.insecure_plaintext || !certs.ok()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadAll(certs->ca_file);
  if (!name.empty()) {
    tls.pem_cert_chain = ReadAll(certs->ClientCert(name));
    tls.pem_private_key = ReadAll(certs->ClientKey(name));
  }
  return grpc::SslCredentials(tls);
}

std::unique_ptr<payorch::v1::PaymentOrchestrator::Stub> Stack::Stub(
    int i) const {
  return payorch::v1::PaymentOrchestrator::NewStub(Channel(i));
}

absl::StatusOr<nlohmann::json> Stack::SandboxCall(
    const std::string& method, const std::string& path,
    const nlohmann::json& body) const {
  CURL* curl = curl_easy_init();
  std::string url = sandbox_url_ + path;
  std::string payload = body.is_null() ? "" : body.dump();
  std::string response;
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (method != "GET")
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return absl::UnavailableError(curl_easy_strerror(rc));
  if (status / 100 != 2) {
    return absl::InternalError(
        absl::StrCat(method, " ", path, " -> HTTP ", status, ": ", response));
  }
  if (response.empty()) return nlohmann::json::object();
  nlohmann::json parsed = nlohmann::json::parse(response, nullptr, false);
  if (parsed.is_discarded())
    return absl::InternalError("sandbox answered non-JSON: " + response);
  return parsed;
}

absl::StatusOr<nlohmann::json> Stack::Pay(const std::string& session_id,
                                          const std::string& outcome,
                                          nlohmann::json extra) const {
  extra["outcome"] = outcome;
  if (!extra.contains("card_no")) extra["card_no"] = "4242424242424242";
  return SandboxCall("POST", "/sandbox/sessions/" + session_id + "/pay", extra);
}

absl::StatusOr<nlohmann::json> Stack::Counters() const {
  return SandboxCall("GET", "/sandbox/counters");
}

absl::Status Stack::SetFaults(nlohmann::json rules, int seed) const {
  auto r = SandboxCall("PUT", "/sandbox/faults",
                       {{"seed", seed}, {"rules", std::move(rules)}});
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status Stack::ClearFaults() const {
  auto r = SandboxCall("DELETE", "/sandbox/faults");
  return r.ok() ? absl::OkStatus() : r.status();
}

}  // namespace payorch::testing
