// Hostile input at payorchd's HTTP edges, against real processes (a real
// redis-server, the sandbox, one or two payorchd replicas): the webhook
// listener and the internal metrics/health listener.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "adapters/paykka/signing.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace v1 = payorch::v1;

constexpr absl::Duration kHttpTimeout = absl::Seconds(2);

// A connected TCP socket to "127.0.0.1:port" with `timeout` on reads.
int Connect(const std::string& target, absl::Duration timeout) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(target.substr(target.rfind(':') + 1), &port));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Reads until the peer closes or the read timeout passes.
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Sends `request` bytes (as far as the peer takes them) and returns the
// answer, without the Date header.
std::string RawHttp(const std::string& target, const std::string& request,
                    absl::Duration timeout = absl::Seconds(10)) {
  int fd = Connect(target, timeout);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string answer = ReadAll(fd);
  close(fd);
  size_t date = answer.find("Date: ");
  if (date != std::string::npos) {
    answer.erase(date, answer.find("\r\n", date) + 2 - date);
  }
  return answer;
}

std::string Post(const std::string& target, const std::string& body,
                 const std::vector<std::string>& headers = {}) {
  std::string request = absl::StrCat(
      "POST /webhooks/paykka HTTP/1.1\r\nHost: payorch\r\nConnection: "
      "close\r\nContent-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n");
  for (const auto& h : headers) absl::StrAppend(&request, h, "\r\n");
  return RawHttp(target, absl::StrCat(request, "\r\n", body));
}

// A notification for `merchant` signed with `key` (headers as PayKKa sends
// them).
std::vector<std::string> SignedHeaders(const RsaPrivateKey& key,
                                       const std::string& body,
                                       const std::string& nonce) {
  std::string ts = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  return {absl::StrCat("x-paykka-appid: ", Stack::kAppId),
          "x-paykka-timestamp: " + ts, "x-paykka-nonce: " + nonce,
          "x-paykka-sign-alg: SHA256_WITH_RSA",
          "x-paykka-sign: " +
              *paykka::PaykkaSignatureHeader(
                  key, paykka::PaykkaResponseStringToSign(ts, nonce, body))};
}

std::string NotificationBody(const std::string& merchant,
                             const std::string& type = "PAYMENT.SUCCESS") {
  return nlohmann::json{{"notify_type", type},
                        {"merchant_id", merchant},
                        {"trans_id", "T1"},
                        {"order_id", "GW1"},
                        {"status", "SUCCESS"}}
      .dump();
}

bool Alive(const Stack& stack) {
  return kill(stack.payorchd_pid(), 0) == 0 &&
         absl::StartsWith(
             RawHttp(stack.http_target(),
                     "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: "
                     "close\r\n\r\n"),
             "HTTP/1.1 200");
}

std::string Metrics(const Stack& stack) {
  std::string answer =
      RawHttp(stack.http_target(),
              "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  return answer.substr(answer.find("\r\n\r\n") + 4);
}

class EdgeSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    platform_ = std::make_unique<RsaPrivateKey>(*RsaPrivateKey::Generate());
    std::string key_file = dir_.Write("platform.pem", platform_->ToPkcs8Pem());
    StackOptions options;
    options.sandbox_args = {"--platform_key=" + key_file};
    options.replicas = 2;
    options.payorchd_args = {
        absl::StrCat("--http_timeout=", absl::FormatDuration(kHttpTimeout))};
    auto stack = Stack::Start(options);
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
  }

  TempDir dir_;
  std::unique_ptr<RsaPrivateKey> platform_;
  std::unique_ptr<Stack> stack_;
};

TEST_F(EdgeSecurityTest, DeeplyNestedMerchantIdLeavesTheProcessUp) {
  // The 300 KB body of the crash report: refused by size.
  std::string huge = "{\"merchant_id\":" + std::string(150000, '[') +
                     std::string(150000, ']') + "}";
  EXPECT_THAT(Post(stack_->webhook_target(), huge), StartsWith("HTTP/1.1 413"));
  // Within the size cap, refused by depth before it is parsed.
  std::string deep = "{\"merchant_id\":" + std::string(30000, '[') +
                     std::string(30000, ']') + "}";
  EXPECT_THAT(Post(stack_->webhook_target(), deep), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(Post(stack_->webhook_target(), R"({"merchant_id":{"a":[1]}})"),
              StartsWith("HTTP/1.1 400"));
  EXPECT_TRUE(Alive(*stack_)) << stack_->PayorchdLog();
}

TEST_F(EdgeSecurityTest, UnsignedRefusedUnknownMerchantLikeBadSignature) {
  std::string body = NotificationBody(Stack::kMerchantId);
  std::string unsigned_answer =
      Post(stack_->webhook_target(), body,
           {absl::StrCat("x-paykka-appid: ", Stack::kAppId)});
  EXPECT_THAT(unsigned_answer, StartsWith("HTTP/1.1 401"));
  RsaPrivateKey other = *RsaPrivateKey::Generate();
  std::string bad_signature =
      Post(stack_->webhook_target(), body, SignedHeaders(other, body, "n1"));
  std::string unknown_body = NotificationBody("M999999");
  std::string unknown = Post(stack_->webhook_target(), unknown_body,
                             SignedHeaders(*platform_, unknown_body, "n2"));
  EXPECT_THAT(bad_signature, StartsWith("HTTP/1.1 401"));
  // Byte for byte (Date aside): the same status, headers and body.
  EXPECT_EQ(unknown, bad_signature);
  EXPECT_EQ(unsigned_answer, bad_signature);
}

TEST_F(EdgeSecurityTest, ReplayedNonceIsRefusedByAnotherReplica) {
  std::string body = NotificationBody(Stack::kMerchantId);
  std::vector<std::string> headers = SignedHeaders(*platform_, body, "once");
  EXPECT_THAT(Post(stack_->webhook_target(0), body, headers),
              StartsWith("HTTP/1.1 200"))
      << stack_->PayorchdLog(0);
  std::string replay = Post(stack_->webhook_target(1), body, headers);
  EXPECT_THAT(replay, StartsWith("HTTP/1.1 401"));
  EXPECT_THAT(replay, HasSubstr("206003"));
  auto keys = stack_->RedisKeys("payorch:nonce:*");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_THAT(*keys, HasSubstr("once"));
  EXPECT_THAT(Metrics(*stack_),
              HasSubstr("payorch_webhooks_total{notify_type=\"PAYMENT."
                        "SUCCESS\",result=\"accepted\"} 1"));
}

TEST_F(EdgeSecurityTest, ThousandJunkWebhooksLeaveMetricsAndRssFlat) {
  auto junk = [&](int i) {
    std::string body =
        NotificationBody(absl::StrCat("M", i), absl::StrCat("JUNK.", i));
    RsaPrivateKey* key = platform_.get();
    return Post(stack_->webhook_target(), body,
                SignedHeaders(*key, body, absl::StrCat("junk-", i)));
  };
  for (int i = 0; i < 50; ++i) junk(i);  // warm up allocator and counters
  size_t metrics_before = Metrics(*stack_).size();
  long rss_before = stack_->RssKb();
  for (int i = 50; i < 1050; ++i) {
    ASSERT_THAT(junk(i), StartsWith("HTTP/1.1 401"));
  }
  size_t metrics_after = Metrics(*stack_).size();
  long rss_after = stack_->RssKb();
  std::printf("junk webhooks: /metrics %zu -> %zu bytes, RSS %ld -> %ld kB\n",
              metrics_before, metrics_after, rss_before, rss_after);
  // Only counter values change (a few more digits), never the set of series.
  EXPECT_LE(metrics_after, metrics_before + 64);
  EXPECT_LE(rss_after - rss_before, 2048);
  EXPECT_THAT(Metrics(*stack_), ::testing::Not(HasSubstr("JUNK")));
}

TEST_F(EdgeSecurityTest, SlowlorisConnectionIsClosedWithinTheTimeout) {
  for (const std::string& target :
       {stack_->webhook_target(), stack_->http_target()}) {
    int fd = Connect(target, absl::Seconds(30));
    std::string partial = "POST /webhooks/paykka HTTP/1.1\r\nHost: x\r\nX-A: ";
    ASSERT_EQ(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(partial.size()));
    absl::Time start = absl::Now();
    ReadAll(fd);  // returns at EOF (or after 30 s if never closed)
    absl::Duration held = absl::Now() - start;
    close(fd);
    std::printf("slowloris on %s: closed after %s (timeout %s)\n",
                target.c_str(), absl::FormatDuration(held).c_str(),
                absl::FormatDuration(kHttpTimeout).c_str());
    // Closed by the server's timeout (plus scheduling slack on a loaded
    // machine), not by the 30 s read timeout of this client.
    EXPECT_LT(held, kHttpTimeout + absl::Seconds(3));
  }
  EXPECT_TRUE(Alive(*stack_));
}

TEST_F(EdgeSecurityTest, HugeHeaderIsRefusedWithoutGrowingRss) {
  long rss_before = stack_->RssKb();
  for (const std::string& target :
       {stack_->webhook_target(), stack_->http_target()}) {
    std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                          std::string(16 << 20, 'a') + "\r\n\r\n";
    std::string answer = RawHttp(target, request);
    EXPECT_THAT(answer, ::testing::Not(StartsWith("HTTP/1.1 200")));
    // 200,000 small headers: the same cap.
    std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 200000; ++i) absl::StrAppend(&many, "H", i, ": v\r\n");
    EXPECT_THAT(RawHttp(target, many + "\r\n"),
                ::testing::Not(StartsWith("HTTP/1.1 200")));
  }
  long rss_after = stack_->RssKb();
  std::printf("16 MiB header: RSS %ld -> %ld kB\n", rss_before, rss_after);
  EXPECT_LT(rss_after - rss_before, 8 * 1024);
  EXPECT_TRUE(Alive(*stack_));
}

TEST_F(EdgeSecurityTest, NoCoreDumpsWhileKeysAreInMemory) {
  auto limits = RunCommand(absl::StrCat("grep 'Max core file size' /proc/",
                                        stack_->payorchd_pid(), "/limits"));
  ASSERT_TRUE(limits.ok()) << limits.status();
  EXPECT_THAT(*limits, ::testing::ContainsRegex("size +0 +0 "));
}

TEST(PaykkaHttpsTest, PlainHttpPaykkaNeedsTheSandboxFlag) {
  // The stack's sandbox listens on plain http; without --paykka_allow_http
  // (the last occurrence of a flag wins) payorchd refuses to start.
  auto stack =
      Stack::Start(StackOptions::Payorchd({"--paykka_allow_http=false"}));
  ASSERT_FALSE(stack.ok());
  EXPECT_THAT(std::string(stack.status().message()), HasSubstr("is not https"));
}

TEST(LoadSheddingTest, OverMerchantRateIsResourceExhaustedWithoutUpstream) {
  // One token, refilled every 1000 s: the second call is shed.
  auto stack = Stack::Start(
      StackOptions::Payorchd({"--merchant_rate=0.001", "--merchant_burst=1"}));
  ASSERT_TRUE(stack.ok()) << stack.status();
  auto stub = (*stack)->Stub();
  v1::CreateCheckoutResponse out;
  grpc::ClientContext first;
  SetDeadline(&first);
  ASSERT_TRUE(
      stub->CreateCheckout(&first, DropInCheckout(NewTransId("shed-ok")), &out)
          .ok());
  std::string shed_id = NewTransId("shed");
  grpc::ClientContext second;
  SetDeadline(&second);
  grpc::Status s = stub->CreateCheckout(&second, DropInCheckout(shed_id), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ReasonOf(s), "OVERLOADED");
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(DetailOf(s, &retry));
  EXPECT_GT(retry.retry_delay().seconds() * 1000 +
                retry.retry_delay().nanos() / 1000000,
            0);
  // No PayKKa call and no Redis record for the shed call.
  auto counters = (*stack)->Counters();
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_FALSE((*counters)["creates_by_trans_id"].contains(shed_id));
  EXPECT_EQ((*counters)["creates_by_trans_id"].size(), 1u);
  auto keys = (*stack)->RedisKeys("*" + shed_id + "*");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, "");
}

TEST(CpuQueueTest, CallExpiredWhileQueuedLeavesNoRedisKeyAndNoUpstream) {
  // One CPU thread, kept busy by the RSA work of many queries (no Redis):
  // their signing and verifying steps run before any waiting admission, so
  // a create sent after them waits in the queue past its deadline.
  // Only the queue's own expiry is under test: no refusal by recent wait.
  auto stack = Stack::Start(
      StackOptions::Payorchd({"--cpu_threads=1", "--reconcile=false",
                              "--cpu_queue_deadline_aware=false"}));
  ASSERT_TRUE(stack.ok()) << stack.status();
  auto redis_cli = absl::StrCat("redis-cli -p ", (*stack)->redis_port(), " ");
  ASSERT_TRUE(RunCommand(redis_cli + "CONFIG RESETSTAT").ok());
  auto stub = (*stack)->Stub();
  constexpr int kQueries = 800;
  struct Query {
    grpc::ClientContext context;
    v1::GetSessionStatusRequest request;
    v1::GetSessionStatusResponse response;
  };
  std::vector<std::unique_ptr<Query>> queries;
  absl::Mutex mu;
  int finished = 0;
  for (int i = 0; i < kQueries; ++i) {
    auto q = std::make_unique<Query>();
    SetDeadline(&q->context, absl::Seconds(60));
    q->request.set_merchant_id(Stack::kMerchantId);
    q->request.set_trans_id(NewTransId("busy"));
    stub->async()->GetSessionStatus(&q->context, &q->request, &q->response,
                                    [&](grpc::Status) {
                                      absl::MutexLock lock(&mu);
                                      ++finished;
                                    });
    queries.push_back(std::move(q));
  }
  // Every query has reached payorchd (in flight or finished) before the
  // create is sent, so the create queues behind what is left of them.
  auto received = [&] {
    double n = 0;
    for (absl::string_view line : absl::StrSplit(Metrics(**stack), '\n')) {
      if (absl::StrContains(line, "method=\"GetSessionStatus\"") &&
          (absl::StartsWith(line, "payorch_requests_in_flight{") ||
           absl::StartsWith(line, "payorch_requests_total{"))) {
        double v = 0;
        if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) n += v;
      }
    }
    return n;
  };
  for (int i = 0; i < 1000 && received() < kQueries; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const std::string late_id = NewTransId("late");
  grpc::ClientContext late;
  SetDeadline(&late, absl::Milliseconds(300));
  v1::CreateCheckoutResponse out;
  grpc::Status s = stub->CreateCheckout(&late, DropInCheckout(late_id), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  {
    absl::MutexLock lock(&mu);
    auto all = [&] { return finished == kQueries; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(90)));
  }
  // payorchd answered it from the queue, not from a later step.
  EXPECT_THAT(Metrics(**stack),
              HasSubstr("payorch_cpu_queue_dropped_total{reason=\"expired\"} "
                        "1"));
  // No Redis command for it (a claim is a script: EVAL/EVALSHA), no key.
  auto stats = RunCommand(redis_cli + "INFO commandstats");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_THAT(*stats, ::testing::Not(HasSubstr("cmdstat_eval")));
  auto keys = (*stack)->RedisKeys("*");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, "");
  // No request reached the sandbox under its trans_id, and no create at all.
  auto counters = (*stack)->Counters();
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_FALSE((*counters)["requests_by_trans_id"].contains(late_id));
  EXPECT_EQ((*counters)["create_requests_by_trans_id"].size(), 0u);
  EXPECT_EQ((*counters)["creates_by_trans_id"].size(), 0u);
}

}  // namespace
}  // namespace payorch::testing
