#include "common/http_server.h"

#include <curl/curl.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/event_loop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace payorch {
namespace {

using ::testing::Contains;
using ::testing::Key;
using ::testing::Pair;

constexpr absl::Duration kWait = absl::Seconds(10);

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

struct Request {
  std::string method = "GET";
  std::string path = "/";
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
};

size_t OnBody(char* data, size_t size, size_t n, void* arg) {
  static_cast<std::string*>(arg)->append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* arg) {
  absl::string_view line(data, size * n);
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    (*static_cast<std::map<std::string, std::string>*>(
        arg))[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

// One blocking libcurl request to 127.0.0.1:`port`, bounded by a timeout.
Reply Fetch(int port, const Request& request) {
  Reply reply;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    reply.code = CURLE_FAILED_INIT;
    return reply;
  }
  const std::string url = absl::StrCat("http://127.0.0.1:", port, request.path);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_slist* headers = curl_slist_append(nullptr, "Expect:");
  for (const std::string& h : request.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  reply.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return reply;
}

// Requests the handlers saw; the handlers run on the loop thread.
class Recorder {
 public:
  void Add(const HttpServerRequest& r) {
    absl::MutexLock lock(&mu_);
    requests_.push_back(r);
  }
  std::vector<HttpServerRequest> Get() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<HttpServerRequest> requests_ ABSL_GUARDED_BY(mu_);
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Start("http-test");
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
  }

  // Starts the server on an ephemeral port with an "/echo" route that answers
  // at once, plus `extra` routes.
  void StartServer(absl::flat_hash_map<std::string, HttpHandler> extra = {},
                   size_t max_body_bytes = 1 << 20) {
    extra["/echo"] = [this](HttpServerRequest request, HttpResponder respond) {
      recorder_.Add(request);
      HttpServerResponse response;
      response.content_type = "application/json";
      response.body =
          absl::StrCat(request.method, " ", request.path, " ", request.body);
      response.headers.emplace_back("X-Reply", "yes");
      std::move(respond)(std::move(response));
    };
    HttpServerLimits limits;
    limits.max_body_bytes = max_body_bytes;
    limits.timeout = absl::Seconds(2);
    auto server = HttpServer::Start(loop_.get(), "127.0.0.1", 0,
                                    std::move(extra), limits);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  void TearDown() override {
    server_.reset();
    loop_.reset();
  }

  int port() const { return server_->port(); }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<HttpServer> server_;
  Recorder recorder_;
};

TEST_F(HttpServerTest, GetOnRouteCallsHandlerAndSendsItsResponse) {
  StartServer();
  Reply reply =
      Fetch(port(), {"GET", "/echo?x=1", "", {"X-Trace-Id: abc-123"}});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "GET /echo ");
  EXPECT_THAT(reply.headers,
              Contains(Pair("content-type", "application/json")));
  EXPECT_THAT(reply.headers, Contains(Pair("x-reply", "yes")));

  const std::vector<HttpServerRequest> seen = recorder_.Get();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].path, "/echo");
  EXPECT_THAT(seen[0].headers, Contains(Pair("x-trace-id", "abc-123")));
  EXPECT_THAT(seen[0].headers, Contains(Key("host")));
  for (const auto& [name, value] : seen[0].headers) {
    EXPECT_EQ(name, absl::AsciiStrToLower(name));
  }
}

TEST_F(HttpServerTest, PostDeliversMethodAndBody) {
  StartServer();
  Reply reply =
      Fetch(port(),
            {"POST", "/echo", "{\"a\":1}", {"Content-Type: application/json"}});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "POST /echo {\"a\":1}");
  const std::vector<HttpServerRequest> seen = recorder_.Get();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].body, "{\"a\":1}");
  EXPECT_THAT(seen[0].headers,
              Contains(Pair("content-type", "application/json")));
}

TEST_F(HttpServerTest, HeadIsReportedAsHeadAndSendsNoBody) {
  StartServer();
  Reply reply = Fetch(port(), {"HEAD", "/echo", "", {}});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "");
  const std::vector<HttpServerRequest> seen = recorder_.Get();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "HEAD");
}

TEST_F(HttpServerTest, UnknownPathIs404WithoutCallingAnyHandler) {
  StartServer();
  for (const char* path : {"/nope", "/echo/", "/ech", "/"}) {
    Reply reply = Fetch(port(), {"GET", path, "", {}});
    ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
    EXPECT_EQ(reply.status, 404) << path;
  }
  EXPECT_TRUE(recorder_.Get().empty());
}

TEST_F(HttpServerTest, DisallowedMethodIsRejectedWithoutCallingHandler) {
  StartServer();
  Reply reply = Fetch(port(), {"DELETE", "/echo", "", {}});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 501);  // libevent's answer to a method not allowed
  EXPECT_TRUE(recorder_.Get().empty());
}

TEST_F(HttpServerTest, BodyOverLimitIs413AndBodyAtLimitIsServed) {
  constexpr size_t kMax = 1000;
  StartServer({}, kMax);
  Reply over = Fetch(port(), {"POST", "/echo", std::string(kMax + 1, 'x'), {}});
  ASSERT_EQ(over.code, CURLE_OK) << curl_easy_strerror(over.code);
  EXPECT_EQ(over.status, 413);
  EXPECT_TRUE(recorder_.Get().empty());

  Reply at = Fetch(port(), {"POST", "/echo", std::string(kMax, 'y'), {}});
  ASSERT_EQ(at.code, CURLE_OK) << curl_easy_strerror(at.code);
  EXPECT_EQ(at.status, 200);
  ASSERT_EQ(recorder_.Get().size(), 1u);
  EXPECT_EQ(recorder_.Get()[0].body.size(), kMax);
}

TEST_F(HttpServerTest, ChunkedBodyOverLimitIs413) {
  constexpr size_t kMax = 1000;
  StartServer({}, kMax);
  Reply over = Fetch(port(), {"POST",
                              "/echo",
                              std::string(kMax + 500, 'x'),
                              {"Transfer-Encoding: chunked"}});
  ASSERT_EQ(over.code, CURLE_OK) << curl_easy_strerror(over.code);
  EXPECT_EQ(over.status, 413);
  EXPECT_TRUE(recorder_.Get().empty());
}

TEST_F(HttpServerTest, OversizedHeadersAndTooManyHeadersAreRefused) {
  StartServer();
  Request big;
  big.path = "/echo";
  big.headers = {"X-Big: " + std::string(16 * 1024, 'a')};
  Reply r = Fetch(port(), big);
  EXPECT_TRUE(r.code != CURLE_OK || r.status == 400 || r.status == 413)
      << r.status;
  Request many;
  many.path = "/echo";
  for (int i = 0; i < 100; ++i) {
    many.headers.push_back(absl::StrCat("H", i, ": v"));
  }
  EXPECT_EQ(Fetch(port(), many).status, 431);
  EXPECT_TRUE(recorder_.Get().empty());
}

TEST_F(HttpServerTest, ResponderCalledFromWorkerThreadDeliversBody) {
  WorkerPool pool(1);
  std::atomic<bool> handler_in_loop{false};
  std::atomic<bool> responded_in_loop{true};
  absl::flat_hash_map<std::string, HttpHandler> routes;
  routes["/slow"] = [&](HttpServerRequest request, HttpResponder respond) {
    handler_in_loop = loop_->InLoopThread();
    pool.Submit(
        [&, body = request.body, respond = std::move(respond)]() mutable {
          responded_in_loop = loop_->InLoopThread();
          HttpServerResponse response;
          response.status = 202;
          response.body = "worker says " + body;
          std::move(respond)(std::move(response));
        });
  };
  StartServer(std::move(routes));
  Reply reply = Fetch(port(), {"POST", "/slow", "hi", {}});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 202);
  EXPECT_EQ(reply.body, "worker says hi");
  EXPECT_THAT(reply.headers,
              Contains(Pair("content-type", "text/plain; charset=utf-8")));
  EXPECT_TRUE(handler_in_loop);
  EXPECT_FALSE(responded_in_loop);
}

// A handler that has not answered yet must not hold up other requests.
TEST_F(HttpServerTest, PendingResponsesDoNotBlockOtherRequests) {
  absl::Mutex mu;
  std::vector<HttpResponder> held;  // guarded by mu
  absl::Notification two_held;
  absl::flat_hash_map<std::string, HttpHandler> routes;
  routes["/hold"] = [&](HttpServerRequest request, HttpResponder respond) {
    absl::MutexLock lock(&mu);
    held.push_back(std::move(respond));
    if (held.size() == 2) two_held.Notify();
  };
  StartServer(std::move(routes));

  Reply first;
  Reply second;
  std::thread a([&] { first = Fetch(port(), {"GET", "/hold", "", {}}); });
  std::thread b([&] { second = Fetch(port(), {"GET", "/hold", "", {}}); });
  const bool both_arrived = two_held.WaitForNotificationWithTimeout(kWait);
  // Meanwhile a third request is served at once.
  Reply echo = Fetch(port(), {"GET", "/echo", "", {}});
  {
    absl::MutexLock lock(&mu);
    // Answer in reverse order of arrival, from this (non-loop) thread.
    for (size_t i = held.size(); i > 0; --i) {
      std::move(held[i - 1])(
          HttpServerResponse{200, "text/plain", absl::StrCat("r", i), {}});
    }
    held.clear();
  }
  a.join();
  b.join();
  ASSERT_TRUE(both_arrived);
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(second.status, 200);
  EXPECT_THAT((std::vector<std::string>{first.body, second.body}),
              ::testing::UnorderedElementsAre("r1", "r2"));
}

TEST_F(HttpServerTest, ListeningOnABusyPortFails) {
  StartServer();
  auto second = HttpServer::Start(loop_.get(), "127.0.0.1", port(), {});
  EXPECT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  // The first server still answers.
  EXPECT_EQ(Fetch(port(), {"GET", "/echo", "", {}}).status, 200);
}

TEST_F(HttpServerTest, DestroyingServerClosesListenerButNotLoop) {
  StartServer();
  const int old_port = port();
  server_.reset();
  Reply reply = Fetch(old_port, {"GET", "/echo", "", {}});
  EXPECT_EQ(reply.code, CURLE_COULDNT_CONNECT);
  absl::Notification ran;
  loop_->Post([&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(kWait));
}

TEST(ParseHostPortTest, AcceptsHostsAndBracketedIpv6) {
  EXPECT_EQ(*ParseHostPort("127.0.0.1:8080"),
            std::make_pair(std::string("127.0.0.1"), 8080));
  EXPECT_EQ(*ParseHostPort("localhost:0"),
            std::make_pair(std::string("localhost"), 0));
  EXPECT_EQ(*ParseHostPort("0.0.0.0:65535"),
            std::make_pair(std::string("0.0.0.0"), 65535));
  EXPECT_EQ(*ParseHostPort("[::1]:80"), std::make_pair(std::string("::1"), 80));
  EXPECT_EQ(*ParseHostPort("[::]:9090"),
            std::make_pair(std::string("::"), 9090));
}

TEST(ParseHostPortTest, RejectsMalformedInput) {
  for (const char* text : {"", "localhost", "localhost:", ":80", "host:-1",
                           "host:65536", "host:http", "[]:80", "[::1]", "::1",
                           "fe80::1:80", "[::1:80", "::1]:80", "host:80x"}) {
    auto parsed = ParseHostPort(text);
    EXPECT_FALSE(parsed.ok()) << "'" << text << "' parsed as " << parsed->first
                              << " " << parsed->second;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace payorch
