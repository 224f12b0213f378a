// Drives the real paykka-sandbox binary over loopback HTTP. Keys are made
// at test time by the openssl CLI; requests are signed by our crypto code
// (one test signs with the openssl CLI instead).

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/paykka/signing.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "sandbox/checkout_page.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/tls.h"

namespace payorch {
namespace {

using Json = nlohmann::json;
using ::payorch::sandbox::FormatAmount;
using ::payorch::testing::BinaryPath;
using ::payorch::testing::MakeTestCertificates;
using ::payorch::testing::RttRelay;
using ::payorch::testing::RunCommand;
using ::payorch::testing::Subprocess;
using ::payorch::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// --- HTTP client (libcurl easy) ---

struct HttpResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  absl::Duration elapsed;
};

size_t OnBody(char* data, size_t size, size_t n, void* arg) {
  static_cast<std::string*>(arg)->append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* arg) {
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    (*static_cast<std::map<std::string, std::string>*>(arg))[name] = value;
  }
  return size * n;
}

HttpResult Http(const std::string& method, const std::string& url,
                const std::string& body,
                const std::vector<std::string>& headers,
                long timeout_ms = 10000, const std::string& ca_file = "") {
  HttpResult r;
  CURL* c = curl_easy_init();
  if (!ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  curl_slist* list = nullptr;
  for (const std::string& h : headers)
    list = curl_slist_append(list, h.c_str());
  list = curl_slist_append(list, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  absl::Time start = absl::Now();
  r.code = curl_easy_perform(c);
  r.elapsed = absl::Now() - start;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return r;
}

Json ParseJson(const std::string& s) { return Json::parse(s, nullptr, false); }

// One keep-alive HTTP/1.1 connection on a plain socket, to see exactly what
// the sandbox does to a connection (libcurl would hide a dead connection by
// retrying).
class RawConnection {
 public:
  // `base` is "http://127.0.0.1:<port>".
  explicit RawConnection(const std::string& base) {
    int port = 0;
    EXPECT_TRUE(absl::SimpleAtoi(base.substr(base.rfind(':') + 1), &port));
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
              0);
  }
  ~RawConnection() { close(fd_); }

  // Sends a POST and reads one response. Returns the raw bytes received: a
  // whole response, or whatever arrived before the connection closed (then
  // `closed` is set).
  std::string Post(const std::string& path, const std::string& body,
                   const std::vector<std::string>& headers, bool* closed) {
    std::string req = absl::StrCat("POST ", path,
                                   " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   "Content-Length: ",
                                   body.size(), "\r\n");
    for (const std::string& h : headers) absl::StrAppend(&req, h, "\r\n");
    absl::StrAppend(&req, "\r\n", body);
    EXPECT_EQ(send(fd_, req.data(), req.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(req.size()));
    std::string in;
    *closed = false;
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!Complete(in) && absl::Now() < deadline) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        *closed = true;
        break;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    return in;
  }

 private:
  static bool Complete(const std::string& in) {
    size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = absl::AsciiStrToLower(in.substr(0, end));
    size_t cl = head.find("content-length:");
    size_t len = 0;
    if (cl != std::string::npos) {
      std::string v = head.substr(cl + 15, head.find("\r\n", cl) - cl - 15);
      EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &len));
    }
    return in.size() >= end + 4 + len;
  }
  int fd_ = -1;
};

// --- a tiny webhook receiver (evhttp on its own thread) ---

class WebhookReceiver {
 public:
  struct Received {
    std::map<std::string, std::string> headers;
    std::string body;
  };

  // The first `fail_first` requests get HTTP 500.
  explicit WebhookReceiver(int fail_first) : fail_first_(fail_first) {
    evthread_use_pthreads();
    base_ = event_base_new();
    http_ = evhttp_new(base_);
    evhttp_bound_socket* s =
        evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(evhttp_bound_socket_get_fd(s), reinterpret_cast<sockaddr*>(&ss),
                &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    evhttp_set_gencb(http_, &WebhookReceiver::OnRequest, this);
    thread_ = std::thread(
        [this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  }
  ~WebhookReceiver() {
    event_base_loopbreak(base_);
    thread_.join();
    evhttp_free(http_);
    event_base_free(base_);
  }
  std::string url() const {
    return absl::StrCat("http://127.0.0.1:", port_, "/hook");
  }
  std::vector<Received> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  // Polls until `n` requests arrived or `timeout` passes.
  std::vector<Received> WaitFor(size_t n, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto r = received();
      if (r.size() >= n) return r;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return received();
  }

 private:
  static void OnRequest(evhttp_request* req, void* arg) {
    auto* self = static_cast<WebhookReceiver*>(arg);
    Received r;
    evkeyvalq* h = evhttp_request_get_input_headers(req);
    for (evkeyval* kv = h->tqh_first; kv != nullptr; kv = kv->next.tqe_next) {
      r.headers[absl::AsciiStrToLower(kv->key)] = kv->value;
    }
    evbuffer* in = evhttp_request_get_input_buffer(req);
    r.body.resize(evbuffer_get_length(in));
    evbuffer_copyout(in, r.body.data(), r.body.size());
    int n;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->received_.push_back(r);
      n = static_cast<int>(self->received_.size());
    }
    evbuffer* out = evbuffer_new();
    if (n <= self->fail_first_) {
      evbuffer_add_printf(out, "oops");
      evhttp_send_reply(req, 500, "Internal Server Error", out);
    } else {
      evbuffer_add_printf(out,
                          "{\"ret_code\":\"000000\",\"ret_msg\":\"Success\"}");
      evhttp_send_reply(req, 200, "OK", out);
    }
    evbuffer_free(out);
  }

  int fail_first_;
  event_base* base_;
  evhttp* http_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Received> received_;
};

// --- the sandbox process and signing helpers ---

struct Keys {
  std::unique_ptr<TempDir> dir;
  RsaPrivateKey m1, m2;
  std::string m1_path, config_path;
};

Keys MakeKeys() {
  auto dir = std::make_unique<TempDir>();
  for (const char* name : {"m1", "m2"}) {
    std::string priv = dir->File(absl::StrCat(name, ".pem"));
    auto gen = RunCommand(absl::StrCat(
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ",
        priv, " 2>/dev/null && openssl pkey -in ", priv, " -pubout -out ",
        dir->File(absl::StrCat(name, "_pub.pem"))));
    EXPECT_TRUE(gen.ok()) << gen.status();
  }
  // m2's public key is given inline as bare Base64 SPKI.
  auto m2_b64 = RunCommand("openssl pkey -in " + dir->File("m2.pem") +
                           " -pubout -outform DER | base64 -w0");
  Json config = {
      {"merchants",
       Json::array({Json{{"merchant_id", "M1"},
                         {"app_id", "A1"},
                         {"public_key_file", dir->File("m1_pub.pem")},
                         {"client_key", "ck_1"},
                         {"pci", true}},
                    Json{{"merchant_id", "M2"},
                         {"app_id", "A2"},
                         {"public_key", *m2_b64},
                         {"client_key", "ck_2"}}})}};
  std::string config_path = dir->Write("config.json", config.dump());
  auto m1_text = ReadFile(dir->File("m1.pem"));
  auto m2_text = ReadFile(dir->File("m2.pem"));
  if (!m1_text.ok() || !m2_text.ok()) {
    ADD_FAILURE() << "openssl did not produce the merchant keys";
    std::abort();
  }
  auto m1 = RsaPrivateKey::Parse(*m1_text);
  auto m2 = RsaPrivateKey::Parse(*m2_text);
  if (!m1.ok() || !m2.ok()) {
    ADD_FAILURE() << "cannot parse the merchant keys";
    std::abort();
  }
  std::string m1_path = dir->File("m1.pem");
  return Keys{std::move(dir), *m1, *m2, m1_path, config_path};
}

class Sandbox {
 public:
  Sandbox(const Keys& keys, std::vector<std::string> extra) {
    std::string pub =
        keys.dir->File(absl::StrCat("platform_", ++count_, ".pem"));
    std::vector<std::string> argv = {
        BinaryPath("paykka-sandbox"),     "--listen=127.0.0.1:0",
        "--config=" + keys.config_path,   "--platform-public-key-out=" + pub,
        "--webhook-retry-initial-ms=100", "--webhook-max-attempts=4"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto proc = Subprocess::Start(argv);
    EXPECT_TRUE(proc.ok()) << proc.status();
    if (proc.ok()) proc_ = *std::move(proc);
    if (proc_ == nullptr) return;
    auto line = proc_->WaitForLine("listening ", absl::Seconds(30));
    EXPECT_TRUE(line.ok()) << line.status();
    if (!line.ok()) return;
    base_ = "http://" + line->substr(strlen("listening "));
    for (const std::string& arg : extra) {
      if (!absl::StartsWith(arg, "--tls-listen=")) continue;
      line = proc_->WaitForLine("https listening ", absl::Seconds(10));
      EXPECT_TRUE(line.ok()) << line.status();
      if (line.ok()) {
        tls_base_ = "https://" + line->substr(strlen("https listening "));
      }
    }
    auto text = ReadFile(pub);
    auto key = text.ok() ? RsaPublicKey::Parse(*text)
                         : absl::StatusOr<RsaPublicKey>(text.status());
    EXPECT_TRUE(key.ok()) << key.status();
    if (key.ok()) platform_ = std::make_unique<RsaPublicKey>(*key);
  }
  bool ok() const { return platform_ != nullptr; }
  const std::string& base() const { return base_; }
  const std::string& tls_base() const { return tls_base_; }
  int port() const { return PortOf(base_); }
  int tls_port() const { return PortOf(tls_base_); }
  const RsaPublicKey& platform() const { return *platform_; }
  Subprocess& proc() { return *proc_; }

 private:
  static int PortOf(const std::string& base) {
    int port = -1;
    if (!absl::SimpleAtoi(base.substr(base.rfind(':') + 1), &port)) return -1;
    return port;
  }
  static inline int count_ = 0;
  std::unique_ptr<Subprocess> proc_;
  std::string base_, tls_base_;
  std::unique_ptr<RsaPublicKey> platform_;
};

struct SignOpts {
  std::string app_id = "A1";
  const RsaPrivateKey* key = nullptr;  // default: m1
  int64_t ts_offset_ms = 0;
  std::string nonce;        // default: random
  std::string omit_header;  // leave this header out
  std::string content_type = "application/json";
  bool raw_base64 = false;  // send the signature without URL-encoding
  std::string sign_path;    // sign a different path
  long timeout_ms = 10000;
};

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keys_ = new Keys(MakeKeys());
    sandbox_ = new Sandbox(*keys_, {});
  }
  static void TearDownTestSuite() {
    delete sandbox_;
    delete keys_;
  }
  void SetUp() override {
    ASSERT_TRUE(sandbox_->ok()) << "the sandbox did not start";
    ASSERT_EQ(Control("POST", "/sandbox/reset").status, 200);
  }

  static std::string Base() { return sandbox_->base(); }

  static std::vector<std::string> SignedHeaders(const std::string& path,
                                                const std::string& body,
                                                const SignOpts& o) {
    std::string ts =
        absl::StrCat(absl::ToUnixMillis(absl::Now()) + o.ts_offset_ms);
    std::string nonce = o.nonce.empty() ? RandomHex(12) : o.nonce;
    const RsaPrivateKey& key = o.key != nullptr ? *o.key : keys_->m1;
    std::string to_sign = paykka::PaykkaRequestStringToSign(
        "POST", o.sign_path.empty() ? path : o.sign_path, ts, nonce, body);
    std::string sign = Base64Encode(*key.SignSha256(to_sign));
    if (!o.raw_base64) sign = PercentEncode(sign);
    std::vector<std::pair<std::string, std::string>> h = {
        {"x-paykka-appid", o.app_id},
        {"x-paykka-timestamp", ts},
        {"x-paykka-nonce", nonce},
        {"x-paykka-sign", sign},
        {"x-paykka-sign-alg", "SHA256_WITH_RSA"},
        {"Content-Type", o.content_type}};
    std::vector<std::string> headers;
    for (auto& [k, v] : h) {
      if (k != o.omit_header) headers.push_back(k + ": " + v);
    }
    return headers;
  }
  static HttpResult Api(const std::string& path, const std::string& body,
                        const SignOpts& o = SignOpts(),
                        const Sandbox* sb = nullptr) {
    if (sb == nullptr) sb = sandbox_;
    return Http("POST", sb->base() + path, body, SignedHeaders(path, body, o),
                o.timeout_ms);
  }
  static HttpResult ApiJ(const std::string& path, const Json& body,
                         const SignOpts& o = SignOpts()) {
    return Api(path, body.dump(), o);
  }
  static HttpResult Control(const std::string& method, const std::string& path,
                            const Json& body = Json::object(),
                            const Sandbox* sb = nullptr) {
    if (sb == nullptr) sb = sandbox_;
    return Http(method, sb->base() + path, method == "GET" ? "" : body.dump(),
                {"Content-Type: application/json"});
  }
  static Json Counters() {
    return ParseJson(Control("GET", "/sandbox/counters").body);
  }
  static Json TransId(const std::string& trans_id) {
    return ParseJson(Control("GET", "/sandbox/trans-ids/" + trans_id).body);
  }
  // A signed Create Session for `trans_id` on a raw keep-alive connection.
  static std::string RawCreate(RawConnection& conn, const std::string& trans_id,
                               bool* closed) {
    std::string body = SessionRequest(trans_id).dump();
    return conn.Post("/v3/payment/acq/session", body,
                     SignedHeaders("/v3/payment/acq/session", body, SignOpts()),
                     closed);
  }

  static Json SessionRequest(const std::string& trans_id) {
    return Json{{"merchant_id", "M1"},
                {"payment_type", "PURCHASE"},
                {"trans_id", trans_id},
                {"amount", 1000},
                {"currency", "USD"},
                {"session_mode", "DROP_IN"},
                {"return_url", "https://shop.test/return"}};
  }
  static Json RecurringSessionRequest(const std::string& trans_id) {
    Json j = SessionRequest(trans_id);
    j["payment_type"] = "RECURRING";
    j["payment"] = Json{{"store_payment_method", true},
                        {"token_usage", "SUBSCRIPTION"},
                        {"shopper_reference", "shopper-1"}};
    return j;
  }
  static std::string CreateSession(const Json& req) {
    HttpResult r = ApiJ("/v3/payment/acq/session", req);
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseJson(r.body)["data"].value("session_id", "");
  }
  static Json Pay(const std::string& session_id, const Json& body) {
    HttpResult r =
        Control("POST", "/sandbox/sessions/" + session_id + "/pay", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseJson(r.body);
  }
  static Json QueryTx(const Json& body) {
    return ParseJson(ApiJ("/v3/payment/acq/query", body).body);
  }
  // Submits the checkout page's form of `session_id`.
  static HttpResult PostForm(const std::string& session_id,
                             const std::string& form) {
    return Http("POST", Base() + "/checkout/" + session_id, form,
                {"Content-Type: application/x-www-form-urlencoded"});
  }
  static Json QuerySession(const std::string& session_id) {
    return ParseJson(ApiJ("/v3/payment/acq/session/query",
                          {{"merchant_id", "M1"}, {"session_id", session_id}})
                         .body);
  }
  static void SetFaults(const Json& faults) {
    HttpResult r = Control("PUT", "/sandbox/faults", faults);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // A first recurring payment: returns its order (token + agreement).
  static Json FirstRecurring(const std::string& trans_id) {
    std::string sid = CreateSession(RecurringSessionRequest(trans_id));
    return Pay(sid, {{"outcome", "SUCCESS"}});
  }
  static Json MitRequest(const std::string& trans_id, const Json& order) {
    return Json{{"merchant_id", "M1"},
                {"payment_type", "RECURRING"},
                {"trans_id", trans_id},
                {"amount", 500},
                {"currency", "USD"},
                {"mit", true},
                {"recurring_agreement_id", order["recurring_agreement_id"]},
                {"payment",
                 {{"payment_method", "BANKCARD"},
                  {"token", order["token"]},
                  {"shopper_reference", "shopper-1"},
                  {"token_usage", "SUBSCRIPTION"}}}};
  }

  static Keys* keys_;
  static Sandbox* sandbox_;
};
Keys* SandboxTest::keys_ = nullptr;
Sandbox* SandboxTest::sandbox_ = nullptr;

void ExpectEnvelope(const HttpResult& r, long status, const std::string& code,
                    const std::string& msg_part = "") {
  EXPECT_EQ(r.status, status) << r.body;
  Json j = ParseJson(r.body);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.value("ret_code", ""), code) << r.body;
  if (!msg_part.empty()) {
    EXPECT_THAT(j.value("ret_msg", ""), HasSubstr(msg_part));
  }
}

// ---------------------------------------------------------------- auth

TEST_F(SandboxTest, EachMissingAuthHeaderIs206002) {
  for (const char* h :
       {"x-paykka-appid", "x-paykka-timestamp", "x-paykka-nonce",
        "x-paykka-sign", "x-paykka-sign-alg"}) {
    SignOpts o;
    o.omit_header = h;
    ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), o),
                   401, "206002", h);
  }
  EXPECT_EQ(Counters()["creates_by_trans_id"].size(), 0u);
}

TEST_F(SandboxTest, BadSignatureIs206003) {
  SignOpts o;
  o.key = &keys_->m2;  // A1 is configured with m1's public key
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), o), 401,
                 "206003");
  SignOpts other_path;
  other_path.sign_path = "/v3/payment/acq";
  ExpectEnvelope(
      ApiJ("/v3/payment/acq/session", SessionRequest("T1"), other_path), 401,
      "206003");
}

TEST_F(SandboxTest, TimestampOutsideFiveMinutesIs206004) {
  for (int64_t off : {-6 * 60 * 1000, 6 * 60 * 1000}) {
    SignOpts o;
    o.ts_offset_ms = off;
    ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), o),
                   401, "206004");
  }
  SignOpts ok;
  ok.ts_offset_ms = -4 * 60 * 1000;
  EXPECT_EQ(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), ok).status,
            200);
}

TEST_F(SandboxTest, ReusedNonceIsRejected) {
  SignOpts o;
  o.nonce = "nonce-" + RandomHex(8);
  EXPECT_EQ(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), o).status,
            200);
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T2"), o), 401,
                 "206003", "nonce");
}

TEST_F(SandboxTest, UnknownAppIdOrForeignMerchantIs206005) {
  SignOpts o;
  o.app_id = "NOPE";
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), o), 401,
                 "206005");
  // M2 belongs to A2, not A1.
  Json req = SessionRequest("T1");
  req["merchant_id"] = "M2";
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", req), 401, "206005");
  // A2 with its own key (configured as bare Base64) works.
  SignOpts a2;
  a2.app_id = "A2";
  a2.key = &keys_->m2;
  EXPECT_EQ(ApiJ("/v3/payment/acq/session", req, a2).status, 200);
}

TEST_F(SandboxTest, RequestSignedByOpensslCliIsAccepted) {
  std::string body = SessionRequest("T-cli").dump();
  std::string ts = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  std::string nonce = RandomHex(10);
  std::string to_sign = paykka::PaykkaRequestStringToSign(
      "POST", "/v3/payment/acq/session", ts, nonce, body);
  std::string file = keys_->dir->Write("to_sign.txt", to_sign);
  auto sig = RunCommand("openssl dgst -sha256 -sign " + keys_->m1_path + " " +
                        file + " | base64 -w0");
  ASSERT_TRUE(sig.ok()) << sig.status();
  for (bool encode : {true, false}) {
    std::string nonce2 = nonce + (encode ? "e" : "r");
    to_sign = paykka::PaykkaRequestStringToSign(
        "POST", "/v3/payment/acq/session", ts, nonce2, body);
    keys_->dir->Write("to_sign.txt", to_sign);
    sig = RunCommand("openssl dgst -sha256 -sign " + keys_->m1_path + " " +
                     file + " | base64 -w0");
    std::string header = encode ? PercentEncode(*sig) : *sig;
    HttpResult r = Http(
        "POST", Base() + "/v3/payment/acq/session", body,
        {"Content-Type: application/json; charset=utf-8", "x-paykka-appid: A1",
         "x-paykka-timestamp: " + ts, "x-paykka-nonce: " + nonce2,
         "x-paykka-sign: " + header, "x-paykka-sign-alg: SHA256_WITH_RSA"});
    if (encode) {
      EXPECT_EQ(r.status, 200) << r.body;
    } else {
      // Same trans_id again: authenticated, then rejected as a duplicate.
      ExpectEnvelope(r, 400, "010000", "duplicate trans_id");
    }
  }
}

TEST_F(SandboxTest, EveryResponseIsSignedWithThePlatformKey) {
  std::vector<HttpResult> results = {
      ApiJ("/v3/payment/acq/session", SessionRequest("T1")),
      ApiJ("/v3/payment/acq/query", {{"merchant_id", "M1"}, {"trans_id", "x"}}),
      Http("POST", Base() + "/v3/payment/acq/query", "{}",
           {"Content-Type: application/json"}),
      Control("GET", "/sandbox/counters")};
  for (const HttpResult& r : results) {
    ASSERT_EQ(r.headers.count("x-paykka-sign"), 1u) << r.body;
    std::string s = paykka::PaykkaResponseStringToSign(
        r.headers.at("x-paykka-timestamp"), r.headers.at("x-paykka-nonce"),
        r.body);
    EXPECT_TRUE(paykka::VerifyPaykkaSignatureHeader(
                    sandbox_->platform(), s, r.headers.at("x-paykka-sign"))
                    .ok())
        << r.body;
  }
  EXPECT_NE(results[0].headers.at("x-paykka-nonce"),
            results[1].headers.at("x-paykka-nonce"));
}

// ------------------------------------------------------ envelope/validation

TEST_F(SandboxTest, EachRequiredSessionFieldIsNamed) {
  for (const char* field : {"merchant_id", "payment_type", "trans_id", "amount",
                            "currency", "session_mode", "return_url"}) {
    Json req = SessionRequest("T1");
    req.erase(field);
    ExpectEnvelope(ApiJ("/v3/payment/acq/session", req), 400, "010000", field);
  }
}

TEST_F(SandboxTest, FieldFormatsAreValidated) {
  std::vector<std::pair<Json, std::string>> cases = {
      {{{"payment_type", "ONCE"}}, "payment_type"},
      {{{"session_mode", "HOST"}}, "session_mode"},
      {{{"currency", "usd"}}, "currency"},
      {{{"currency", "USDX"}}, "currency"},
      {{{"trans_id", std::string(65, 'x')}}, "trans_id"},
      {{{"trans_id", 42}}, "trans_id"},
      {{{"capture_method", "LATER"}}, "capture_method"},
      {{{"amount", 10.5}}, "amount must be a positive integer"},
      {{{"amount", "10.50"}}, "amount must be a positive integer"},
      {{{"amount", -5}}, "amount must be a positive integer"},
      {{{"amount", 0}}, "amount must be a positive integer"},
      {{{"amount", "0"}}, "amount must be a positive integer"},
      {{{"amount", "12a"}}, "amount must be a positive integer"},
      {{{"expire_time", "tomorrow"}}, "expire_time"},
  };
  for (auto& [patch, part] : cases) {
    Json req = SessionRequest("T1");
    req.update(patch);
    ExpectEnvelope(ApiJ("/v3/payment/acq/session", req), 400, "010000", part);
  }
}

TEST_F(SandboxTest, AmountAsDigitStringIsAcceptedAndReturnedAsInteger) {
  Json req = SessionRequest("T1");
  req["amount"] = "800";
  req["timestamp"] = 1757387467986;  // unknown fields are ignored
  std::string sid = CreateSession(req);
  Json s = QuerySession(sid);
  ASSERT_TRUE(s["data"]["amount"].is_number_integer()) << s;
  EXPECT_EQ(s["data"]["amount"], 800);
}

TEST_F(SandboxTest, MalformedJsonIs400) {
  ExpectEnvelope(Api("/v3/payment/acq/session", "{\"merchant_id\":"), 400,
                 "010000");
  ExpectEnvelope(Api("/v3/payment/acq/session", "[1,2]"), 400, "010000");
}

TEST_F(SandboxTest, WrongContentTypeIs415) {
  SignOpts o;
  o.content_type = "text/plain";
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T1"), o), 415,
                 "010000", "Content-Type");
}

TEST_F(SandboxTest, OversizedBodyIs413) {
  Json req = SessionRequest("T1");
  req["description"] = std::string(1100 * 1024, 'x');
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", req), 413, "010000");
}

TEST_F(SandboxTest, UnknownPathIs404AndWrongMethodIs405) {
  ExpectEnvelope(ApiJ("/v3/payment/acq/nothing", SessionRequest("T1")), 404,
                 "010000", "unknown path");
  ExpectEnvelope(Http("GET", Base() + "/v3/payment/acq/session", "", {}), 405,
                 "010000");
}

// ---------------------------------------------------------- lifecycle

TEST_F(SandboxTest, SessionLifecycleToCompleted) {
  HttpResult created = ApiJ("/v3/payment/acq/session", SessionRequest("T1"));
  ASSERT_EQ(created.status, 200);
  Json c = ParseJson(created.body);
  EXPECT_EQ(c["ret_code"], "000000");
  std::string sid = c["data"]["session_id"];
  EXPECT_TRUE(absl::StartsWith(sid, "CS"));
  EXPECT_EQ(c["data"]["status"], "PROCESSING");
  EXPECT_EQ(c["data"]["session_url"], Base() + "/checkout/" + sid);
  EXPECT_EQ(c["data"]["trans_id"], "T1");

  Json q = QuerySession(sid);
  EXPECT_EQ(q["data"]["status"], "PROCESSING");
  EXPECT_FALSE(q["data"].contains("order_id"));
  HttpResult none = ApiJ("/v3/payment/acq/query",
                         {{"merchant_id", "M1"}, {"session_id", sid}});
  ExpectEnvelope(none, 404, "206024", "the order doesn't exist");

  Json order = Pay(sid, {{"outcome", "SUCCESS"}});
  EXPECT_TRUE(absl::StartsWith(order.value("order_id", ""), "GW"));
  q = QuerySession(sid);
  EXPECT_EQ(q["data"]["status"], "COMPLETED");
  EXPECT_EQ(q["data"]["order_id"], order["order_id"]);

  for (const Json& by :
       {Json{{"session_id", sid}}, Json{{"trans_id", "T1"}},
        Json{{"order_id", order["order_id"]}, {"trans_id", ""}}}) {
    Json req = by;
    req["merchant_id"] = "M1";
    Json t = QueryTx(req);
    ASSERT_EQ(t["ret_code"], "000000") << t;
    const Json& d = t["data"];
    EXPECT_EQ(d["status"], "SUCCESS");
    EXPECT_EQ(d["order_id"], order["order_id"]);
    EXPECT_EQ(d["session_id"], sid);
    EXPECT_EQ(d["amount"], 1000);
    EXPECT_EQ(d["currency"], "USD");
    EXPECT_EQ(d["error_code"], "0000");
    EXPECT_EQ(d["error_description"], "request success");
    EXPECT_TRUE(d.contains("pay_finish_time"));
    EXPECT_EQ(d["payment"]["payment_method"], "BANKCARD");
    EXPECT_EQ(d["card_info"]["last4"], "4242");
    EXPECT_EQ(d["card_info"]["card_brand"], "VISA");
    EXPECT_EQ(d["balances"]["captured_amount"], 1000);
  }
  // A paid session cannot be paid again.
  EXPECT_EQ(Control("POST", "/sandbox/sessions/" + sid + "/pay",
                    {{"outcome", "SUCCESS"}})
                .status,
            409);
}

TEST_F(SandboxTest, FailedPaymentLeavesSessionOpenForAnotherAttempt) {
  std::string sid = CreateSession(SessionRequest("T1"));
  Json failed = Pay(sid, {{"outcome", "FAILURE"},
                          {"error_code", "2099"},
                          {"error_description", "Invalid Card"}});
  EXPECT_EQ(failed["status"], "FAILURE");
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "PROCESSING");
  Json t = QueryTx({{"merchant_id", "M1"}, {"trans_id", "T1"}});
  EXPECT_EQ(t["data"]["status"], "FAILURE");
  EXPECT_EQ(t["data"]["error_code"], "2099");
  EXPECT_EQ(t["data"]["error_description"], "Invalid Card");

  Json ok = Pay(sid, {{"outcome", "AUTHORIZED"}});
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "COMPLETED");
  t = QueryTx({{"merchant_id", "M1"}, {"session_id", sid}});
  EXPECT_EQ(t["data"]["order_id"], ok["order_id"]);
  EXPECT_EQ(t["data"]["status"], "AUTHORIZED");
  EXPECT_EQ(t["data"]["balances"]["able_to_capture_amount"], 1000);
}

TEST_F(SandboxTest, ThreeDsPendingThenComplete) {
  std::string sid = CreateSession(SessionRequest("T1"));
  Json pending = Pay(sid, {{"outcome", "PROCESSING"}});
  EXPECT_EQ(pending["status"], "PROCESSING");
  EXPECT_FALSE(pending.contains("pay_finish_time"));
  EXPECT_THAT(pending["authentication_result"].value("authentication_url", ""),
              HasSubstr("/checkout/3ds/"));
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "PROCESSING");
  HttpResult done = Control(
      "POST",
      "/sandbox/orders/" + pending["order_id"].get<std::string>() + "/complete",
      {{"outcome", "SUCCESS"}});
  ASSERT_EQ(done.status, 200) << done.body;
  Json t = QueryTx({{"merchant_id", "M1"}, {"session_id", sid}});
  EXPECT_EQ(t["data"]["status"], "SUCCESS");
  EXPECT_FALSE(t["data"].contains("authentication_result"));
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "COMPLETED");
}

TEST_F(SandboxTest, QuerySessionByTransIdAndUnknownSession) {
  std::string sid = CreateSession(SessionRequest("T1"));
  Json q = ParseJson(ApiJ("/v3/payment/acq/session/query",
                          {{"merchant_id", "M1"}, {"trans_id", "T1"}})
                         .body);
  EXPECT_EQ(q["data"]["session_id"], sid);
  EXPECT_EQ(q["data"]["session_mode"], "DROP_IN");
  EXPECT_EQ(q["data"]["payment_type"], "PURCHASE");
  ExpectEnvelope(ApiJ("/v3/payment/acq/session/query",
                      {{"merchant_id", "M1"}, {"session_id", "CS404"}}),
                 404, "206011");
  ExpectEnvelope(ApiJ("/v3/payment/acq/session/query", {{"merchant_id", "M1"}}),
                 400, "010000");
  ExpectEnvelope(ApiJ("/v3/payment/acq/query", {{"merchant_id", "M1"},
                                                {"trans_id", ""},
                                                {"order_id", ""},
                                                {"session_id", ""}}),
                 400, "010000");
}

TEST_F(SandboxTest, SessionExpiresOnTheVirtualClock) {
  Json req = SessionRequest("T1");
  req["expire_time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%S+08:00",
                                        absl::Now() + absl::Minutes(10),
                                        absl::FixedTimeZone(8 * 3600));
  std::string sid = CreateSession(req);
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "PROCESSING");
  HttpResult adv =
      Control("POST", "/sandbox/clock/advance", {{"seconds", 601}});
  ASSERT_EQ(adv.status, 200);
  EXPECT_EQ(ParseJson(adv.body)["offset_seconds"], 601);
  EXPECT_EQ(ParseJson(Control("GET", "/sandbox/clock").body)["offset_seconds"],
            601);
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "EXPIRED");
  ExpectEnvelope(ApiJ("/v3/payment/acq/query",
                      {{"merchant_id", "M1"}, {"session_id", sid}}),
                 404, "206024");
  EXPECT_EQ(Control("POST", "/sandbox/sessions/" + sid + "/pay",
                    {{"outcome", "SUCCESS"}})
                .status,
            409);
  // Real-time auth still works after the virtual clock moved.
  EXPECT_EQ(ApiJ("/v3/payment/acq/session", SessionRequest("T2")).status, 200);
}

TEST_F(SandboxTest, ExpireTimeFormatsAndLimits) {
  auto fmt = [](absl::Duration ahead, const char* f) {
    return absl::FormatTime(f, absl::Now() + ahead, absl::UTCTimeZone());
  };
  int n = 0;
  for (const char* f : {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+0000",
                        "%Y-%m-%dT%H:%M:%S+00:00"}) {
    Json req = SessionRequest(absl::StrCat("T", ++n));
    req["expire_time"] = fmt(absl::Hours(1), f);
    EXPECT_EQ(ApiJ("/v3/payment/acq/session", req).status, 200) << f;
  }
  Json far = SessionRequest("T9");
  far["expire_time"] = fmt(absl::Hours(25), "%Y-%m-%dT%H:%M:%SZ");
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", far), 400, "010000",
                 "expire_time");
  Json past = SessionRequest("T9");
  past["expire_time"] = fmt(-absl::Minutes(1), "%Y-%m-%dT%H:%M:%SZ");
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", past), 400, "010000",
                 "expire_time");
}

TEST_F(SandboxTest, DuplicateTransIdIsRejectedByDefault) {
  std::string sid = CreateSession(SessionRequest("T1"));
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("T1")), 400,
                 "010000", "duplicate trans_id");
  EXPECT_EQ(Counters()["creates_by_trans_id"]["T1"], 1);
  EXPECT_EQ(Counters()["requests_by_trans_id"]["T1"], 2);
}

TEST_F(SandboxTest, DuplicateTransIdReturnsExistingWhenConfigured) {
  Sandbox other(*keys_, {"--duplicate-trans-id=return_existing"});
  ASSERT_TRUE(other.ok());
  HttpResult a = Api("/v3/payment/acq/session", SessionRequest("T1").dump(),
                     SignOpts(), &other);
  HttpResult b = Api("/v3/payment/acq/session", SessionRequest("T1").dump(),
                     SignOpts(), &other);
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(ParseJson(a.body)["data"]["session_id"],
            ParseJson(b.body)["data"]["session_id"]);
  Json counters =
      ParseJson(Control("GET", "/sandbox/counters", {}, &other).body);
  EXPECT_EQ(counters["creates_by_trans_id"]["T1"], 1);
}

// ---------------------------------------------------------- recurring

TEST_F(SandboxTest, RecurringFirstPaymentYieldsTokenAndMitChargesSucceed) {
  Json first = FirstRecurring("R1");
  EXPECT_TRUE(absl::StartsWith(first.value("token", ""), "TK")) << first;
  EXPECT_TRUE(
      absl::StartsWith(first.value("recurring_agreement_id", ""), "RA"));
  Json t = QueryTx({{"merchant_id", "M1"}, {"trans_id", "R1"}});
  EXPECT_EQ(t["data"]["token"], first["token"]);
  EXPECT_EQ(t["data"]["shopper_reference"], "shopper-1");

  HttpResult r = ApiJ("/v3/payment/acq", MitRequest("R1-m1", first));
  ASSERT_EQ(r.status, 200) << r.body;
  Json d = ParseJson(r.body)["data"];
  EXPECT_EQ(d["status"], "SUCCESS");
  EXPECT_EQ(d["amount"], 500);
  EXPECT_EQ(d["recurring_agreement_id"], first["recurring_agreement_id"]);
  EXPECT_EQ(d["card_info"]["last4"], "4242");
  EXPECT_EQ(QueryTx({{"merchant_id", "M1"},
                     {"trans_id", "R1-m1"}})["data"]["order_id"],
            d["order_id"]);
  // payment_method spelling variants are accepted.
  Json bankcard = MitRequest("R1-m2", first);
  bankcard["payment"]["payment_method"] = "BankCard";
  EXPECT_EQ(ApiJ("/v3/payment/acq", bankcard).status, 200);
  EXPECT_EQ(Counters()["charges_by_trans_id"]["R1-m1"], 1);
  // Duplicate MIT trans_id is rejected and charges nothing.
  ExpectEnvelope(ApiJ("/v3/payment/acq", MitRequest("R1-m1", first)), 400,
                 "010000", "duplicate trans_id");
  EXPECT_EQ(Counters()["charges_by_trans_id"]["R1-m1"], 1);
}

TEST_F(SandboxTest, RecurringRuleErrors) {
  // Create Session side.
  Json no_store = RecurringSessionRequest("S1");
  no_store["payment"]["store_payment_method"] = false;
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", no_store), 400, "2014");
  Json no_ref = RecurringSessionRequest("S2");
  no_ref["payment"].erase("shopper_reference");
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", no_ref), 400, "2008");
  Json mit_first = RecurringSessionRequest("S3");
  mit_first["mit"] = true;
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", mit_first), 400, "2012");

  // Initiate Transaction side.
  Json first = FirstRecurring("R1");
  Json no_mit = MitRequest("M-1", first);
  no_mit.erase("mit");
  ExpectEnvelope(ApiJ("/v3/payment/acq", no_mit), 400, "2010");
  Json mit_false = MitRequest("M-2", first);
  mit_false["mit"] = false;
  ExpectEnvelope(ApiJ("/v3/payment/acq", mit_false), 400, "2011");
  Json no_shopper = MitRequest("M-3", first);
  no_shopper["payment"].erase("shopper_reference");
  ExpectEnvelope(ApiJ("/v3/payment/acq", no_shopper), 400, "2008");
  Json unknown = MitRequest("M-4", first);
  unknown["recurring_agreement_id"] = "RA000";
  ExpectEnvelope(ApiJ("/v3/payment/acq", unknown), 400, "2015");
  Json wrong_token = MitRequest("M-5", first);
  wrong_token["payment"]["token"] = "TK000";
  ExpectEnvelope(ApiJ("/v3/payment/acq", wrong_token), 400, "010000", "token");
  ASSERT_EQ(ApiJ("/v3/payment/acq/recurring/cancel",
                 {{"merchant_id", "M1"},
                  {"recurring_agreement_id", first["recurring_agreement_id"]}})
                .status,
            200);
  ExpectEnvelope(ApiJ("/v3/payment/acq", MitRequest("M-6", first)), 400,
                 "2016");
  EXPECT_EQ(Counters()["charges_by_trans_id"].size(), 0u);
}

TEST_F(SandboxTest, ForcedDeclineAndMagicAmount) {
  Json first = FirstRecurring("R1");
  std::string token = first["token"];
  HttpResult f = Control("POST", "/sandbox/tokens/" + token + "/next-outcome",
                         {{"outcome", "FAILURE"},
                          {"error_code", "2099"},
                          {"error_description", "Invalid Card"}});
  ASSERT_EQ(f.status, 200) << f.body;
  HttpResult r = ApiJ("/v3/payment/acq", MitRequest("M-1", first));
  ASSERT_EQ(r.status, 200);
  Json d = ParseJson(r.body)["data"];
  EXPECT_EQ(d["status"], "FAILURE");
  EXPECT_EQ(d["error_code"], "2099");
  // The override was for one charge only.
  r = ApiJ("/v3/payment/acq", MitRequest("M-2", first));
  EXPECT_EQ(ParseJson(r.body)["data"]["status"], "SUCCESS");
  Json magic = MitRequest("M-3", first);
  magic["amount"] = 1051;
  r = ApiJ("/v3/payment/acq", magic);
  EXPECT_EQ(ParseJson(r.body)["data"]["status"], "FAILURE");
  EXPECT_EQ(ParseJson(r.body)["data"]["error_code"], "2099");
}

TEST_F(SandboxTest, PlainCardInitiateTransaction) {
  Json req = {
      {"merchant_id", "M1"},
      {"payment_type", "PURCHASE"},
      {"trans_id", "P1"},
      {"amount", "250"},
      {"currency", "EUR"},
      {"return_url", "https://shop.test/r"},
      {"payment",
       {{"payment_method", "BANKCARD"}, {"card_no", "4000000000000002"}}}};
  HttpResult r = ApiJ("/v3/payment/acq", req);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ParseJson(r.body)["data"]["status"], "FAILURE");
  // M2 is not PCI: plain card numbers are refused.
  req["merchant_id"] = "M2";
  req["trans_id"] = "P2";
  SignOpts a2;
  a2.app_id = "A2";
  a2.key = &keys_->m2;
  ExpectEnvelope(ApiJ("/v3/payment/acq", req, a2), 400, "206017");
}

// ---------------------------------------------------------- counters

TEST_F(SandboxTest, CountersTrackRequestsCreatesAndCharges) {
  CreateSession(SessionRequest("C1"));
  QueryTx({{"merchant_id", "M1"}, {"trans_id", "C1"}});
  Json first = FirstRecurring("C2");
  ApiJ("/v3/payment/acq", MitRequest("C3", first));
  Json c = Counters();
  EXPECT_EQ(c["requests_by_endpoint"]["/v3/payment/acq/session"], 2);
  EXPECT_EQ(c["requests_by_endpoint"]["/v3/payment/acq/query"], 1);
  EXPECT_EQ(c["requests_by_endpoint"]["/v3/payment/acq"], 1);
  EXPECT_EQ(c["requests_by_trans_id"]["C1"], 2);
  EXPECT_EQ(c["creates_by_trans_id"]["C1"], 1);
  EXPECT_EQ(c["creates_by_trans_id"]["C2"], 1);
  EXPECT_EQ(c["charges_by_trans_id"]["C3"], 1);
  EXPECT_EQ(c["in_flight"], 0);
  EXPECT_GE(c["max_in_flight"], 1);
  ASSERT_EQ(Control("POST", "/sandbox/reset").status, 200);
  EXPECT_EQ(Counters()["requests_by_endpoint"].size(), 0u);
}

// ---------------------------------------------------------- webhooks

TEST_F(SandboxTest, WebhookIsDeliveredSignedWithThePlatformKey) {
  WebhookReceiver receiver(0);
  Json req = SessionRequest("W1");
  req["notify_url"] = receiver.url();
  std::string sid = CreateSession(req);
  Json order = Pay(sid, {{"outcome", "SUCCESS"}});
  auto got = receiver.WaitFor(1, absl::Seconds(10));
  ASSERT_EQ(got.size(), 1u);
  const auto& w = got[0];
  EXPECT_EQ(w.headers.at("x-paykka-appid"), "A1");
  EXPECT_EQ(w.headers.at("x-paykka-sign-alg"), "SHA256_WITH_RSA");
  std::string s = paykka::PaykkaResponseStringToSign(
      w.headers.at("x-paykka-timestamp"), w.headers.at("x-paykka-nonce"),
      w.body);
  EXPECT_TRUE(paykka::VerifyPaykkaSignatureHeader(sandbox_->platform(), s,
                                                  w.headers.at("x-paykka-sign"))
                  .ok());
  Json body = ParseJson(w.body);
  EXPECT_EQ(body["notify_type"], "PAYMENT.SUCCESS");
  EXPECT_EQ(body["order_id"], order["order_id"]);
  EXPECT_EQ(body["status"], "SUCCESS");
  EXPECT_EQ(body["session_id"], sid);
  EXPECT_EQ(body["amount"], 1000);
  // The delivery record says delivered after one attempt.
  absl::SleepFor(absl::Milliseconds(100));
  Json list = ParseJson(Control("GET", "/sandbox/webhooks").body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["delivered"], true);
  EXPECT_EQ(list[0]["attempts"], 1);
  EXPECT_EQ(list[0]["last_http_status"], 200);
}

TEST_F(SandboxTest, WebhookIsRetriedUntilAcknowledged) {
  WebhookReceiver receiver(2);  // 500, 500, then 200
  Json req = SessionRequest("W2");
  req["notify_url"] = receiver.url();
  std::string sid = CreateSession(req);
  Pay(sid, {{"outcome", "FAILURE"}});
  auto got = receiver.WaitFor(3, absl::Seconds(10));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(ParseJson(got[2].body)["notify_type"], "PAYMENT.FAILURE");
  EXPECT_NE(got[0].headers.at("x-paykka-nonce"),
            got[1].headers.at("x-paykka-nonce"));
  absl::SleepFor(absl::Milliseconds(200));
  Json list = ParseJson(Control("GET", "/sandbox/webhooks").body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["attempts"], 3);
  EXPECT_EQ(list[0]["delivered"], true);
}

// ---------------------------------------------------------- faults

TEST_F(SandboxTest, LatencyFaultDelaysTheResponse) {
  SetFaults(
      {{"rules",
        {{{"endpoint", "/v3/payment/acq/session"}, {"latency_ms", 400}}}}});
  HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest("L1"));
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(r.elapsed, absl::Milliseconds(300));
  // Other endpoints are not affected by an endpoint-specific rule.
  HttpResult q = ApiJ("/v3/payment/acq/query",
                      {{"merchant_id", "M1"}, {"trans_id", "L1"}});
  EXPECT_EQ(q.status, 404);
  EXPECT_LT(q.elapsed, absl::Milliseconds(300));
}

TEST_F(SandboxTest, ErrorStatusFaults) {
  SetFaults({{"rules", {{{"endpoint", "*"}, {"http_status", 429}}}}});
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("E1")), 429,
                 "999429", "Request rate limit exceeded");
  for (int status : {500, 502, 503}) {
    SetFaults({{"rules", {{{"http_status", status}, {"error_rate", 1.0}}}}});
    ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("E1")),
                   status, "999999", "system exception");
  }
  EXPECT_EQ(Counters()["creates_by_trans_id"].size(), 0u);
  ASSERT_EQ(Control("DELETE", "/sandbox/faults").status, 200);
  EXPECT_EQ(ApiJ("/v3/payment/acq/session", SessionRequest("E1")).status, 200);
}

TEST_F(SandboxTest, ErrorRateIsSeededAndReproducible) {
  auto run = [&] {
    SetFaults({{"seed", 7},
               {"rules", {{{"http_status", 503}, {"error_rate", 0.5}}}}});
    std::string pattern;
    for (int i = 0; i < 12; ++i) {
      long s = ApiJ("/v3/payment/acq/query",
                    {{"merchant_id", "M1"}, {"trans_id", "x"}})
                   .status;
      pattern += s == 503 ? 'E' : '.';
    }
    return pattern;
  };
  std::string a = run();
  EXPECT_EQ(a, run());
  EXPECT_NE(a.find('E'), std::string::npos);
  EXPECT_NE(a.find('.'), std::string::npos);
}

TEST_F(SandboxTest, TimeoutAfterCommitAppliesButNeverAnswers) {
  SetFaults({{"rules",
              {{{"endpoint", "/v3/payment/acq/session"},
                {"timeout_after_commit_rate", 1.0}}}}});
  SignOpts o;
  o.timeout_ms = 700;
  HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest("TO1"), o);
  EXPECT_EQ(r.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(Counters()["creates_by_trans_id"]["TO1"], 1);
  // The session exists: a query by trans_id finds it.
  Json q = ParseJson(ApiJ("/v3/payment/acq/session/query",
                          {{"merchant_id", "M1"}, {"trans_id", "TO1"}})
                         .body);
  EXPECT_EQ(q["data"]["trans_id"], "TO1");
  // The held request is forgotten once the client closed.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (Counters()["in_flight"] != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Counters()["in_flight"], 0);
}

TEST_F(SandboxTest, ResetFaultClosesWithoutResponseAndAppliesNothing) {
  SetFaults({{"rules", {{{"reset_rate", 1.0}}}}});
  HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest("RS1"));
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_NE(r.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(Counters()["creates_by_trans_id"].size(), 0u);
  EXPECT_EQ(Counters()["in_flight"], 0);
}

TEST_F(SandboxTest, MalformedJsonFault) {
  SetFaults({{"rules", {{{"malformed_json_rate", 1.0}}}}});
  HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest("MJ1"));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(ParseJson(r.body).is_discarded()) << r.body;
}

TEST_F(SandboxTest, BadSignatureFault) {
  SetFaults({{"rules", {{{"bad_signature_rate", 1.0}}}}});
  HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest("BS1"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(ParseJson(r.body)["ret_code"], "000000");
  std::string s = paykka::PaykkaResponseStringToSign(
      r.headers.at("x-paykka-timestamp"), r.headers.at("x-paykka-nonce"),
      r.body);
  EXPECT_EQ(paykka::VerifyPaykkaSignatureHeader(sandbox_->platform(), s,
                                                r.headers.at("x-paykka-sign"))
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(SandboxTest, FaultsFromFlags) {
  Sandbox other(*keys_,
                {"--http-status=503", "--fault-endpoint=/v3/payment/acq"});
  ASSERT_TRUE(other.ok());
  ExpectEnvelope(Api("/v3/payment/acq", "{}", SignOpts(), &other), 503,
                 "999999");
  Json faults = ParseJson(Control("GET", "/sandbox/faults", {}, &other).body);
  EXPECT_EQ(faults["rules"][0]["http_status"], 503);
  EXPECT_NE(Api("/v3/payment/acq/query", "{}", SignOpts(), &other).status, 503);
}

// ------------------------------------------- exactly-once faults (issue 9)

TEST_F(SandboxTest, CloseAfterCommitKillsAReusedConnectionWithNoReplyByte) {
  SetFaults({{"rules",
              {{{"endpoint", "/v3/payment/acq/session"},
                {"close_after_commit_rate", 1.0},
                {"only_reused_connections", true},
                {"times", 1}}}}});
  RawConnection conn(Base());
  bool closed = false;
  // The first request of a connection is not matched by the rule.
  EXPECT_THAT(RawCreate(conn, "KA1", &closed), HasSubstr("000000"));
  EXPECT_FALSE(closed);
  // The reused connection dies with no reply byte; the session exists.
  EXPECT_EQ(RawCreate(conn, "KA2", &closed), "");
  EXPECT_TRUE(closed);
  Json t = TransId("KA2");
  EXPECT_EQ(t["create_requests"], 1);
  EXPECT_EQ(t["objects"], 1);
  EXPECT_EQ(t["sessions_created"], 1);
  EXPECT_EQ(ParseJson(ApiJ("/v3/payment/acq/session/query",
                           {{"merchant_id", "M1"}, {"trans_id", "KA2"}})
                          .body)["data"]["trans_id"],
            "KA2");
  // `times` is used up: the next reused connection is served.
  RawConnection again(Base());
  EXPECT_THAT(RawCreate(again, "KA3", &closed), HasSubstr("000000"));
  EXPECT_THAT(RawCreate(again, "KA4", &closed), HasSubstr("000000"));
  EXPECT_FALSE(closed);
}

TEST_F(SandboxTest, CloseBeforeCommitAppliesNothing) {
  SetFaults({{"rules",
              {{{"close_before_commit_rate", 1.0},
                {"only_reused_connections", true}}}}});
  RawConnection conn(Base());
  bool closed = false;
  EXPECT_THAT(RawCreate(conn, "KB1", &closed), HasSubstr("000000"));
  EXPECT_EQ(RawCreate(conn, "KB2", &closed), "");
  EXPECT_TRUE(closed);
  Json t = TransId("KB2");
  EXPECT_EQ(t["create_requests"], 1);
  EXPECT_EQ(t["objects"], 0);
  EXPECT_EQ(Counters()["in_flight"], 0);
}

// What the fault is for: libcurl re-sends a POST by itself when a reused
// connection dies before the reply. The copy carries the same nonce, so the
// sandbox (like PayKKa) refuses it as a replay, although the first copy was
// applied.
TEST_F(SandboxTest, LibcurlResendsAPostWhenAReusedConnectionDies) {
  SetFaults({{"rules",
              {{{"endpoint", "/v3/payment/acq/session"},
                {"close_after_commit_rate", 1.0},
                {"only_reused_connections", true},
                {"times", 1}}}}});
  CURL* c = curl_easy_init();
  auto post = [&](const std::string& trans_id) {
    std::string body = SessionRequest(trans_id).dump();
    curl_slist* list = nullptr;
    for (const std::string& h :
         SignedHeaders("/v3/payment/acq/session", body, SignOpts())) {
      list = curl_slist_append(list, h.c_str());
    }
    std::string out;
    curl_easy_setopt(c, CURLOPT_URL,
                     (Base() + "/v3/payment/acq/session").c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    EXPECT_EQ(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(list);
    return out;
  };
  EXPECT_THAT(post("LC1"), HasSubstr("000000"));
  EXPECT_THAT(post("LC2"), HasSubstr("206003"));
  curl_easy_cleanup(c);
  Json t = TransId("LC2");
  EXPECT_EQ(t["create_requests"], 2);
  EXPECT_EQ(t["objects"], 1);
}

TEST_F(SandboxTest, DuplicateRefusalIsConfigurable) {
  CreateSession(SessionRequest("D1"));
  Json first = FirstRecurring("D2");
  ASSERT_EQ(ApiJ("/v3/payment/acq", MitRequest("D3", first)).status, 200);
  struct Wording {
    int status;
    std::string code, msg;
  };
  for (const Wording& w :
       {Wording{400, "210011", "Transaction ID already exists"},
        Wording{409, "999001", "merchant order number repeated"},
        Wording{200, "206099", "the trans_id is duplicated"},
        Wording{422, "010000", "Repeated request, please check trans_id"}}) {
    HttpResult put = Control("PUT", "/sandbox/duplicate-trans-id",
                             {{"mode", "reject"},
                              {"http_status", w.status},
                              {"ret_code", w.code},
                              {"ret_msg", w.msg}});
    ASSERT_EQ(put.status, 200) << put.body;
    ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("D1")),
                   w.status, w.code, w.msg);
    ExpectEnvelope(ApiJ("/v3/payment/acq", MitRequest("D3", first)), w.status,
                   w.code, w.msg);
  }
  EXPECT_EQ(TransId("D1")["objects"], 1);
  EXPECT_EQ(TransId("D1")["create_requests"], 5);
  EXPECT_EQ(TransId("D3")["objects"], 1);
  EXPECT_EQ(ParseJson(Control("GET", "/sandbox/duplicate-trans-id").body)
                .value("ret_msg", ""),
            "Repeated request, please check trans_id");
  // DELETE (and /sandbox/reset) restore the start-up policy.
  ASSERT_EQ(Control("DELETE", "/sandbox/duplicate-trans-id").status, 200);
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("D1")), 400,
                 "010000", "duplicate trans_id");
  EXPECT_EQ(
      Control("PUT", "/sandbox/duplicate-trans-id", {{"mode", "x"}}).status,
      400);
  EXPECT_EQ(Control("PUT", "/sandbox/duplicate-trans-id", {{"http_status", 99}})
                .status,
            400);
}

TEST_F(SandboxTest, DuplicatePolicyReturnsExistingOrCreatesASecondObject) {
  Json first = FirstRecurring("DE1");
  HttpResult a = ApiJ("/v3/payment/acq", MitRequest("DE2", first));
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(Control("PUT", "/sandbox/duplicate-trans-id",
                    {{"mode", "return_existing"}})
                .status,
            200);
  HttpResult b = ApiJ("/v3/payment/acq", MitRequest("DE2", first));
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(ParseJson(a.body)["data"]["order_id"],
            ParseJson(b.body)["data"]["order_id"]);
  EXPECT_EQ(TransId("DE2")["objects"], 1);
  // The trans_id of a session without an order is still refused.
  CreateSession(SessionRequest("DE3"));
  ExpectEnvelope(ApiJ("/v3/payment/acq", MitRequest("DE3", first)), 400,
                 "010000", "duplicate trans_id");
  // "create": a PayKKa without the uniqueness check; duplicates show up in
  // the counters.
  ASSERT_EQ(Control("PUT", "/sandbox/duplicate-trans-id", {{"mode", "create"}})
                .status,
            200);
  HttpResult c = ApiJ("/v3/payment/acq", MitRequest("DE2", first));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_NE(ParseJson(c.body)["data"]["order_id"],
            ParseJson(a.body)["data"]["order_id"]);
  Json t = TransId("DE2");
  EXPECT_EQ(t["objects"], 2);
  EXPECT_EQ(t["charges_created"], 2);
  EXPECT_EQ(t["create_requests"], 3);
  ASSERT_EQ(Control("POST", "/sandbox/reset").status, 200);
  EXPECT_EQ(ParseJson(Control("GET", "/sandbox/duplicate-trans-id").body)
                .value("mode", ""),
            "reject");
}

TEST_F(SandboxTest, DuplicateWordingFromFlags) {
  Sandbox other(*keys_, {"--duplicate-trans-id-status=409",
                         "--duplicate-trans-id-code=777777",
                         "--duplicate-trans-id-msg=order already exists"});
  ASSERT_TRUE(other.ok());
  std::string body = SessionRequest("DF1").dump();
  EXPECT_EQ(Api("/v3/payment/acq/session", body, SignOpts(), &other).status,
            200);
  ExpectEnvelope(Api("/v3/payment/acq/session", body, SignOpts(), &other), 409,
                 "777777", "order already exists");
}

TEST_F(SandboxTest, ProxyHtmlPagesHaveNoEnvelopeAndNoSignature) {
  for (int status : {404, 408, 409, 425, 499}) {
    SetFaults({{"rules",
                {{{"endpoint", "/v3/payment/acq/session"},
                  {"proxy_status", status}}}}});
    std::string trans_id = absl::StrCat("PX", status);
    HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest(trans_id));
    EXPECT_EQ(r.status, status);
    EXPECT_THAT(r.headers["content-type"], HasSubstr("text/html"));
    EXPECT_THAT(r.body, HasSubstr(absl::StrCat("<title>", status, " ")));
    EXPECT_TRUE(ParseJson(r.body).is_discarded()) << r.body;
    EXPECT_EQ(r.headers.count("x-paykka-sign"), 0u);
    EXPECT_EQ(TransId(trans_id)["objects"], 0);
  }
  // After commit: PayKKa applied the request, the proxy answers anyway.
  SetFaults(
      {{"rules", {{{"proxy_status", 499}, {"proxy_after_commit", true}}}}});
  HttpResult r = ApiJ("/v3/payment/acq/session", SessionRequest("PXC"));
  EXPECT_EQ(r.status, 499);
  EXPECT_EQ(TransId("PXC")["objects"], 1);
  EXPECT_EQ(Control("PUT", "/sandbox/faults", {{"proxy_status", 302}}).status,
            400);
}

TEST_F(SandboxTest, VisibilityDelayHidesCommittedObjectsFromQueries) {
  Json first = FirstRecurring("V0");
  SetFaults(
      {{"rules",
        {{{"endpoint", "/v3/payment/acq/session"},
          {"visibility_delay_ms", 3000}},
         {{"endpoint", "/v3/payment/acq"}, {"visibility_delay_ms", 3000}}}}});
  absl::Time created = absl::Now();
  ASSERT_EQ(ApiJ("/v3/payment/acq/session", SessionRequest("V1")).status, 200);
  HttpResult charge = ApiJ("/v3/payment/acq", MitRequest("V2", first));
  ASSERT_EQ(charge.status, 200) << charge.body;
  std::string order_id = ParseJson(charge.body)["data"]["order_id"];
  auto session_query = [] {
    return ApiJ("/v3/payment/acq/session/query",
                {{"merchant_id", "M1"}, {"trans_id", "V1"}});
  };
  auto charge_query = [] {
    return ApiJ("/v3/payment/acq/query",
                {{"merchant_id", "M1"}, {"trans_id", "V2"}});
  };
  ExpectEnvelope(session_query(), 404, "206011");
  ExpectEnvelope(charge_query(), 404, "206024");
  ExpectEnvelope(ApiJ("/v3/payment/acq/query",
                      {{"merchant_id", "M1"}, {"order_id", order_id}}),
                 404, "206024");
  ASSERT_LT(absl::Now() - created, absl::Milliseconds(2500))
      << "too slow to observe the delay";
  // Committed all the same: the trans_id is taken.
  ExpectEnvelope(ApiJ("/v3/payment/acq/session", SessionRequest("V1")), 400,
                 "010000", "duplicate trans_id");
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (charge_query().status != 200 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(absl::Now() - created, absl::Milliseconds(3000));
  EXPECT_EQ(session_query().status, 200);
  EXPECT_EQ(charge_query().status, 200);
  EXPECT_EQ(TransId("V1")["objects"], 1);
}

TEST_F(SandboxTest, CountersByTransIdSeparateRequestsFromObjects) {
  CreateSession(SessionRequest("N1"));
  ApiJ("/v3/payment/acq/session", SessionRequest("N1"));
  QueryTx({{"merchant_id", "M1"}, {"trans_id", "N1"}});
  Json t = TransId("N1");
  EXPECT_EQ(t["trans_id"], "N1");
  EXPECT_EQ(t["requests"], 3);
  EXPECT_EQ(t["create_requests"], 2);
  EXPECT_EQ(t["sessions_created"], 1);
  EXPECT_EQ(t["charges_created"], 0);
  EXPECT_EQ(t["objects"], 1);
  EXPECT_EQ(Counters()["create_requests_by_trans_id"]["N1"], 2);
  // Unknown trans_ids are all zero; the id is percent-decoded.
  EXPECT_EQ(TransId("nope%2Fx")["trans_id"], "nope/x");
  EXPECT_EQ(TransId("nope%2Fx")["objects"], 0);
}

TEST_F(SandboxTest, NewFaultFieldsRoundTrip) {
  Json rule = {{"endpoint", "/v3/payment/acq"},
               {"close_after_commit_rate", 0.5},
               {"close_before_commit_rate", 0.25},
               {"proxy_status", 408},
               {"proxy_rate", 0.1},
               {"proxy_after_commit", true},
               {"visibility_delay_ms", 100},
               {"only_reused_connections", true},
               {"times", 3}};
  HttpResult r = Control("PUT", "/sandbox/faults", {{"rules", {rule}}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json got = ParseJson(r.body)["rules"][0];
  for (auto& [k, v] : rule.items()) EXPECT_EQ(got[k], v) << k;
  EXPECT_EQ(Control("PUT", "/sandbox/faults", {{"times", -1}}).status, 400);
  EXPECT_EQ(Control("PUT", "/sandbox/faults", {{"only_reused_connections", 1}})
                .status,
            400);
}

// ------------------------------------------------- HTTPS and emulated RTT

class SandboxTlsTest : public SandboxTest {
 protected:
  static void SetUpTestSuite() {
    SandboxTest::SetUpTestSuite();
    auto certs = MakeTestCertificates(keys_->dir->File("tls"));
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new payorch::testing::TestCertificates(*certs);
    tls_ = new Sandbox(
        *keys_, {"--tls-listen=127.0.0.1:0", "--tls-cert=" + certs->cert_file,
                 "--tls-key=" + certs->key_file});
  }
  static void TearDownTestSuite() {
    delete tls_;
    delete certs_;
    SandboxTest::TearDownTestSuite();
  }
  void SetUp() override {
    ASSERT_NE(tls_, nullptr);
    ASSERT_TRUE(tls_->ok());
    ASSERT_EQ(Control("POST", "/sandbox/reset", {}, tls_).status, 200);
  }
  static Json TlsCounters() {
    return ParseJson(Control("GET", "/sandbox/counters", {}, tls_).body);
  }

  // One easy handle: connections are reused unless `fresh` forbids it.
  class Client {
   public:
    Client() : c_(curl_easy_init()) {}
    ~Client() { curl_easy_cleanup(c_); }
    HttpResult Create(const std::string& url, const std::string& trans_id,
                      bool fresh = false) {
      std::string body = SessionRequest(trans_id).dump();
      curl_slist* list = nullptr;
      for (const std::string& h :
           SignedHeaders("/v3/payment/acq/session", body, SignOpts())) {
        list = curl_slist_append(list, h.c_str());
      }
      HttpResult r;
      curl_easy_setopt(c_, CURLOPT_URL,
                       (url + "/v3/payment/acq/session").c_str());
      curl_easy_setopt(c_, CURLOPT_CAINFO, certs_->ca_file.c_str());
      curl_easy_setopt(c_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c_, CURLOPT_HTTPHEADER, list);
      curl_easy_setopt(c_, CURLOPT_WRITEFUNCTION, &OnBody);
      curl_easy_setopt(c_, CURLOPT_WRITEDATA, &r.body);
      curl_easy_setopt(c_, CURLOPT_TIMEOUT_MS, 10000L);
      curl_easy_setopt(c_, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
      absl::Time start = absl::Now();
      r.code = curl_easy_perform(c_);
      r.elapsed = absl::Now() - start;
      curl_easy_getinfo(c_, CURLINFO_RESPONSE_CODE, &r.status);
      curl_slist_free_all(list);
      return r;
    }

   private:
    CURL* c_;
  };

  static payorch::testing::TestCertificates* certs_;
  static Sandbox* tls_;
};
payorch::testing::TestCertificates* SandboxTlsTest::certs_ = nullptr;
Sandbox* SandboxTlsTest::tls_ = nullptr;

TEST_F(SandboxTlsTest, HttpsListenerServesTheSignedApi) {
  HttpResult r =
      Api("/v3/payment/acq/session", SessionRequest("S1").dump(), SignOpts(),
          tls_);  // plain listener of the same process
  EXPECT_EQ(r.status, 200) << r.body;
  std::string body = SessionRequest("S2").dump();
  HttpResult s = Http("POST", tls_->tls_base() + "/v3/payment/acq/session",
                      body, SignedHeaders("/v3/payment/acq/session", body, {}),
                      10000, certs_->ca_file);
  ASSERT_EQ(s.code, CURLE_OK);
  EXPECT_EQ(s.status, 200) << s.body;
  std::string to_sign = paykka::PaykkaResponseStringToSign(
      s.headers.at("x-paykka-timestamp"), s.headers.at("x-paykka-nonce"),
      s.body);
  EXPECT_TRUE(paykka::VerifyPaykkaSignatureHeader(tls_->platform(), to_sign,
                                                  s.headers.at("x-paykka-sign"))
                  .ok());
  // Without the test CA the certificate does not verify.
  HttpResult untrusted =
      Http("GET", tls_->tls_base() + "/sandbox/counters", "", {});
  EXPECT_EQ(untrusted.code, CURLE_PEER_FAILED_VERIFICATION);
  Json c = TlsCounters();
  EXPECT_EQ(c["tls_connections"], 1);
  EXPECT_EQ(c["creates_by_trans_id"]["S2"], 1);
}

TEST_F(SandboxTlsTest, TlsSessionsAreResumedAndCounted) {
  Client client;
  EXPECT_EQ(client.Create(tls_->tls_base(), "R1", true).status, 200);
  EXPECT_EQ(client.Create(tls_->tls_base(), "R2", true).status, 200);
  EXPECT_EQ(client.Create(tls_->tls_base(), "R3").status, 200);  // reused
  Json c = TlsCounters();
  EXPECT_EQ(c["connections"], 3);  // and the plain one asking for counters
  EXPECT_EQ(c["tls_connections"], 2);
  EXPECT_EQ(c["tls_resumed_connections"], 1);
}

TEST_F(SandboxTlsTest, KeepAliveFaultsWorkOverTls) {
  ASSERT_EQ(Control("PUT", "/sandbox/faults",
                    {{"rules",
                      {{{"close_after_commit_rate", 1.0},
                        {"only_reused_connections", true},
                        {"times", 1}}}}},
                    tls_)
                .status,
            200);
  Client client;
  EXPECT_EQ(client.Create(tls_->tls_base(), "K1").status, 200);
  HttpResult resent = client.Create(tls_->tls_base(), "K2");
  EXPECT_THAT(resent.body, HasSubstr("206003"));  // libcurl's own re-send
  Json c = TlsCounters();
  EXPECT_EQ(c["create_requests_by_trans_id"]["K2"], 2);
  EXPECT_EQ(c["creates_by_trans_id"]["K2"], 1);
}

// The relay's delays are lower bounds by construction; these check that each
// round trip a real network would add is there.
TEST_F(SandboxTlsTest, RttRelayDelaysConnectionSetupHandshakeAndRequests) {
  const absl::Duration rtt = absl::Milliseconds(100);
  auto plain = RttRelay::Start(tls_->port(), rtt);
  auto tls = RttRelay::Start(tls_->tls_port(), rtt);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(tls.ok()) << tls.status();
  std::string plain_url = absl::StrCat("http://127.0.0.1:", (*plain)->port());
  std::string tls_url = absl::StrCat("https://127.0.0.1:", (*tls)->port());
  Client client;
  HttpResult fresh = client.Create(plain_url, "T1", true);
  HttpResult reused = client.Create(plain_url, "T2");
  HttpResult fresh_tls = client.Create(tls_url, "T3", true);
  HttpResult reused_tls = client.Create(tls_url, "T4");
  for (const HttpResult* r : {&fresh, &reused, &fresh_tls, &reused_tls}) {
    EXPECT_EQ(r->status, 200) << r->body;
  }
  // connect (1 RTT) + request; TLS 1.3 adds its handshake's round trip.
  EXPECT_GE(fresh.elapsed, 2 * rtt);
  EXPECT_GE(reused.elapsed, rtt);
  EXPECT_GE(fresh_tls.elapsed, 3 * rtt);
  EXPECT_GE(reused_tls.elapsed, rtt);
  Json c = TlsCounters();
  EXPECT_EQ(c["connections"], 3);  // and the plain one asking for counters
  EXPECT_EQ(c["tls_connections"], 1);
}

TEST_F(SandboxTlsTest, RttRelayForwardsACloseWithoutReplyBytes) {
  auto relay = RttRelay::Start(tls_->port(), absl::Milliseconds(20));
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_EQ(Control("PUT", "/sandbox/faults",
                    {{"rules",
                      {{{"close_before_commit_rate", 1.0},
                        {"only_reused_connections", true}}}}},
                    tls_)
                .status,
            200);
  RawConnection conn(absl::StrCat("http://127.0.0.1:", (*relay)->port()));
  bool closed = false;
  EXPECT_THAT(RawCreate(conn, "C1", &closed), HasSubstr("000000"));
  EXPECT_EQ(RawCreate(conn, "C2", &closed), "");
  EXPECT_TRUE(closed);
}

TEST(RttRelay, RefusesNonLoopbackAddresses) {
  for (const char* target : {"--target=10.1.2.3:80", "--target=localhost:80",
                             "--target=127.0.0.1:0"}) {
    auto proc = Subprocess::Start({BinaryPath("rtt-relay"), target});
    ASSERT_TRUE(proc.ok()) << proc.status();
    auto status = (*proc)->Wait(absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 2) << target;
  }
}

// ---------------------------------------------------------- checkout page

TEST_F(SandboxTest, CheckoutPageShowsSessionAndPaysWithTestCards) {
  std::string sid = CreateSession(SessionRequest("H1"));
  HttpResult page = Http("GET", Base() + "/checkout/" + sid, "", {});
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.headers["content-type"], HasSubstr("text/html"));
  EXPECT_THAT(page.body, HasSubstr("<span id=\"amount\">10.00 USD</span>"));
  EXPECT_THAT(page.body, HasSubstr("name=\"card_no\""));

  // A decline shows the form again with the reason; the session stays open.
  HttpResult declined = PostForm(sid, "card_no=4000+0000+0000+0002");
  EXPECT_EQ(declined.status, 200);
  EXPECT_THAT(declined.body, HasSubstr("id=\"error\""));
  EXPECT_THAT(declined.body, HasSubstr("Invalid Card (2099)"));
  EXPECT_THAT(declined.body, HasSubstr("name=\"card_no\""));
  EXPECT_THAT(declined.body, HasSubstr("action=\"/checkout/" + sid + "\""));
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "PROCESSING");

  // The retry pays: the shopper goes to the session's return_url.
  HttpResult paid = PostForm(sid, "card_no=5555555555554444");
  EXPECT_EQ(paid.status, 303);
  EXPECT_EQ(paid.headers["location"], "https://shop.test/return");
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "COMPLETED");
  Json t = QueryTx({{"merchant_id", "M1"}, {"session_id", sid}});
  EXPECT_EQ(t["data"]["card_info"]["card_brand"], "MASTERCARD");

  // A paid session takes no more payments: its status and the way back.
  HttpResult again = Http("GET", Base() + "/checkout/" + sid, "", {});
  EXPECT_EQ(again.status, 200);
  EXPECT_THAT(again.body, HasSubstr(">COMPLETED<"));
  EXPECT_THAT(again.body, Not(HasSubstr("name=\"card_no\"")));
  EXPECT_THAT(again.body, HasSubstr("href=\"https://shop.test/return\""));
  HttpResult twice = PostForm(sid, "card_no=4242424242424242");
  EXPECT_EQ(twice.status, 200);
  EXPECT_THAT(twice.body, HasSubstr("session is COMPLETED"));
  EXPECT_EQ(Http("GET", Base() + "/checkout/CS404", "", {}).status, 404);
}

TEST_F(SandboxTest, CheckoutPageShowsTheAmountInMajorUnits) {
  EXPECT_EQ(FormatAmount(1999, "USD"), "19.99 USD");
  EXPECT_EQ(FormatAmount(5, "EUR"), "0.05 EUR");
  EXPECT_EQ(FormatAmount(0, "USD"), "0.00 USD");
  EXPECT_EQ(FormatAmount(1999, "JPY"), "1999 JPY");
  EXPECT_EQ(FormatAmount(1999, "KRW"), "1999 KRW");
  EXPECT_EQ(FormatAmount(1999, "KWD"), "1.999 KWD");
  EXPECT_EQ(FormatAmount(7, "BHD"), "0.007 BHD");
  EXPECT_EQ(FormatAmount(12345, "CLF"), "1.2345 CLF");
  EXPECT_EQ(FormatAmount(-250, "USD"), "-2.50 USD");
  EXPECT_EQ(FormatAmount(INT64_MIN, "JPY"), "-9223372036854775808 JPY");
  for (const auto& [currency, shown] :
       std::vector<std::pair<std::string, std::string>>{
           {"USD", "19.99 USD"}, {"JPY", "1999 JPY"}, {"KWD", "1.999 KWD"}}) {
    Json req = SessionRequest("M-" + currency);
    req["amount"] = 1999;
    req["currency"] = currency;
    std::string sid = CreateSession(req);
    EXPECT_THAT(Http("GET", Base() + "/checkout/" + sid, "", {}).body,
                HasSubstr(">" + shown + "<"))
        << currency;
  }
}

TEST_F(SandboxTest, CheckoutPageAsksAgainForAnEmptyOrInvalidCardNumber) {
  std::string sid = CreateSession(SessionRequest("V1"));
  for (const auto& [form, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"card_no=", "Enter a card number."},
           {"other=1", "Enter a card number."},
           {"card_no=++", "Enter a card number."},
           {"card_no=4242abcd42424242", "must be 12 to 19 digits"},
           {"card_no=42424242424", "must be 12 to 19 digits"},
           {"card_no=42424242424242424242", "must be 12 to 19 digits"},
           {"card_no=4242424242424241", "not valid"}}) {
    HttpResult r = PostForm(sid, form);
    EXPECT_EQ(r.status, 422) << form;
    EXPECT_THAT(r.body, HasSubstr(message)) << form;
    EXPECT_THAT(r.body, HasSubstr("name=\"card_no\"")) << form;
  }
  // Nothing was charged: no order, the session still open, then it pays.
  Json s = QuerySession(sid)["data"];
  EXPECT_EQ(s["status"], "PROCESSING");
  EXPECT_FALSE(s.contains("order_id"));
  HttpResult paid = PostForm(sid, "card_no=4242-4242-4242-4242");
  EXPECT_EQ(paid.status, 303);
  EXPECT_EQ(paid.headers["location"], "https://shop.test/return");
}

TEST_F(SandboxTest, CheckoutPageTakesTheShopperThroughThe3dsChallenge) {
  std::string sid = CreateSession(SessionRequest("H2"));
  HttpResult tds = PostForm(sid, "card_no=4000000000003220");
  ASSERT_EQ(tds.status, 303);
  std::string challenge = tds.headers["location"];
  EXPECT_THAT(challenge, StartsWith(Base() + "/checkout/3ds/"));
  HttpResult page = Http("GET", challenge, "", {});
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("Authenticate"));

  // A failed challenge is a decline: back to the form, the session open.
  HttpResult failed = Http("POST", challenge, "outcome=FAILURE",
                           {"Content-Type: application/x-www-form-urlencoded"});
  EXPECT_EQ(failed.status, 200);
  EXPECT_THAT(failed.body, HasSubstr("3-D Secure authentication failed"));
  EXPECT_THAT(failed.body, HasSubstr("action=\"/checkout/" + sid + "\""));
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "PROCESSING");

  HttpResult retry = PostForm(sid, "card_no=4000000000003220");
  ASSERT_EQ(retry.status, 303);
  EXPECT_NE(retry.headers["location"], challenge);  // a new order
  HttpResult ok = Http("POST", retry.headers["location"], "outcome=SUCCESS",
                       {"Content-Type: application/x-www-form-urlencoded"});
  EXPECT_EQ(ok.status, 303);
  EXPECT_EQ(ok.headers["location"], "https://shop.test/return");
  EXPECT_EQ(QuerySession(sid)["data"]["status"], "COMPLETED");
  // The finished challenge cannot be answered again.
  EXPECT_EQ(Http("POST", retry.headers["location"], "outcome=SUCCESS",
                 {"Content-Type: application/x-www-form-urlencoded"})
                .status,
            409);
}

// ---------------------------------------------------------- concurrency

TEST_F(SandboxTest, HoldsAThousandConcurrentRequestsUnderLatency) {
  constexpr int kRequests = 1000;
  SetFaults({{"rules", {{{"latency_ms", 500}}}}});
  CURLM* multi = curl_multi_init();
  std::vector<CURL*> handles;
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/json");
  std::string body = "{}";
  std::string url = Base() + "/v3/payment/acq/query";
  for (int i = 0; i < kRequests; ++i) {
    CURL* c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
    auto* sink = new std::string;
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(c, CURLOPT_PRIVATE, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(multi, c);
    handles.push_back(c);
  }
  int running = 0;
  absl::Time deadline = absl::Now() + absl::Seconds(40);
  do {
    curl_multi_perform(multi, &running);
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  } while (running > 0 && absl::Now() < deadline);
  int ok = 0;
  for (CURL* c : handles) {
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 401) ++ok;  // unsigned: answered 206002 after the latency
    std::string* sink = nullptr;
    curl_easy_getinfo(c, CURLINFO_PRIVATE, &sink);
    delete sink;
    curl_multi_remove_handle(multi, c);
    curl_easy_cleanup(c);
  }
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  EXPECT_EQ(ok, kRequests);
  Json c = Counters();
  EXPECT_GE(c["max_in_flight"].get<int64_t>(), kRequests);
  EXPECT_EQ(c["in_flight"], 0);
}

// ---------------------------------------------------------- process

TEST_F(SandboxTest, ExitsCleanlyOnSigterm) {
  Sandbox other(*keys_, {});
  ASSERT_TRUE(other.ok());
  auto status = other.proc().Signal(SIGTERM, true, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace payorch
