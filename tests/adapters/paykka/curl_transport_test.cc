#include "adapters/paykka/curl_transport.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace payorch::paykka {
namespace {

// A tiny HTTP/1.1 server on its own thread and event base, on 127.0.0.1:0.
// GET or POST /echo answers 200 with the body and an "x-echo-method"
// header; /slow?ms=N answers after N ms. Counts TCP connections.
class TestServer {
 public:
  TestServer() {
    // loopbreak comes from the test thread: the base must be thread-aware.
    evthread_use_pthreads();
    base_ = event_base_new();
    http_ = evhttp_new(base_);
    evhttp_set_bevcb(http_, &TestServer::OnConnection, this);
    evhttp_set_gencb(http_, &TestServer::OnRequest, this);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    // A deep backlog: 200 clients connect at once.
    listener_ = evconnlistener_new_bind(
        base_, nullptr, nullptr, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
        1024, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    evhttp_bind_listener(http_, listener_);
    sockaddr_in bound{};
    socklen_t len = sizeof(bound);
    getsockname(evconnlistener_get_fd(listener_),
                reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.sin_port);
    thread_ = std::thread(
        [this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
    // event_base_loop() clears an earlier loopbreak, so the destructor's
    // loopbreak only works once the loop runs: wait for a first callback.
    absl::Notification running;
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* arg) {
          static_cast<absl::Notification*>(arg)->Notify();
        },
        &running, nullptr);
    running.WaitForNotification();
  }
  ~TestServer() {
    event_base_loopbreak(base_);
    thread_.join();
    // Replies still held back by /slow are dropped with the server.
    for (Delayed* d : delayed_) {
      event_free(d->timer);
      delete d;
    }
    evhttp_free(http_);
    event_base_free(base_);
  }

  std::string Url(absl::string_view path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int drops() const { return drops_.load(); }

 private:
  static bufferevent* OnConnection(event_base* base, void* arg) {
    static_cast<TestServer*>(arg)->connections_++;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  }

  struct Delayed {
    evhttp_request* req;
    event* timer;
    TestServer* server;
  };

  static void Reply(evhttp_request* req) {
    evbuffer* in = evhttp_request_get_input_buffer(req);
    std::string body(evbuffer_get_length(in), '\0');
    evbuffer_copyout(in, body.data(), body.size());
    evbuffer* out = evbuffer_new();
    evbuffer_add(out, body.data(), body.size());
    const char* method =
        evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" : "POST";
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Echo-Method",
                      method);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
  }

  static void OnDelay(evutil_socket_t, short, void* arg) {
    auto* d = static_cast<Delayed*>(arg);
    d->server->delayed_.erase(d);
    Reply(d->req);
    event_free(d->timer);
    delete d;
  }

  static void OnRequest(evhttp_request* req, void* arg) {
    auto* self = static_cast<TestServer*>(arg);
    self->requests_++;
    const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* path = evhttp_uri_get_path(uri);
    if (path != nullptr && std::strcmp(path, "/drop") == 0) {
      // Read the whole request, then close the keep-alive connection
      // without a reply byte (a server restart, an idle-timeout race).
      self->drops_++;
      bufferevent* bev =
          evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
      shutdown(bufferevent_getfd(bev), SHUT_RDWR);
      return;
    }
    if (path != nullptr && std::strcmp(path, "/slow") == 0) {
      int ms = 0;
      const char* query = evhttp_uri_get_query(uri);
      if (query != nullptr && std::strncmp(query, "ms=", 3) == 0) {
        (void)absl::SimpleAtoi(query + 3, &ms);
      }
      auto* d = new Delayed{req, nullptr, self};
      self->delayed_.insert(d);
      d->timer = evtimer_new(self->base_, &TestServer::OnDelay, d);
      timeval tv{ms / 1000, (ms % 1000) * 1000};
      evtimer_add(d->timer, &tv);
      return;
    }
    Reply(req);
  }

  event_base* base_;
  evhttp* http_;
  evconnlistener* listener_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> drops_{0};
  absl::flat_hash_set<Delayed*> delayed_;  // loop thread only
};

// A loopback port with nothing listening.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class CurlMultiTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = *EventLoop::Start("curl-test");
    transport_ = *CurlMultiTransport::Create(loop_.get());
  }
  void TearDown() override {
    transport_.reset();
    loop_->Stop();
  }

  absl::StatusOr<HttpResponse> SendAndWait(HttpRequest req,
                                           absl::Duration timeout) {
    absl::StatusOr<HttpResponse> result = absl::UnknownError("no callback");
    absl::Notification done;
    transport_->Send(std::move(req), absl::Now() + timeout,
                     [&](absl::StatusOr<HttpResponse> r) {
                       EXPECT_TRUE(loop_->InLoopThread());
                       result = std::move(r);
                       done.Notify();
                     });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    return result;
  }

  static HttpRequest Post(std::string url, std::string body) {
    HttpRequest r;
    r.url = std::move(url);
    r.body = std::move(body);
    r.headers = {{"Content-Type", "application/json"}};
    return r;
  }

  TestServer server_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<CurlMultiTransport> transport_;
};

TEST_F(CurlMultiTransportTest, PostsTheBodyAndReturnsLowerCasedHeaders) {
  absl::StatusOr<HttpResponse> r =
      SendAndWait(Post(server_.Url("/echo"), R"({"a":1})"), absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"a":1})");
  EXPECT_EQ(r->Header("x-echo-method"), "POST");
}

TEST_F(CurlMultiTransportTest, SequentialRequestsReuseOneConnection) {
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpResponse> r = SendAndWait(
        Post(server_.Url("/echo"), absl::StrCat(i)), absl::Seconds(5));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->body, absl::StrCat(i));
  }
  EXPECT_EQ(server_.requests(), 5);
  EXPECT_EQ(server_.connections(), 1);
}

// Finding 1: a reused keep-alive connection dies after the server read the
// request. libcurl re-sends a request by itself on a new connection when
// that happens; a create or charge must reach the server once, and its
// outcome is "maybe sent".
TEST_F(CurlMultiTransportTest, AtMostOnceRequestIsNeverResentByLibcurl) {
  ASSERT_TRUE(
      SendAndWait(Post(server_.Url("/echo"), "{}"), absl::Seconds(5)).ok());
  HttpRequest create = Post(server_.Url("/drop"), R"({"trans_id":"T-1"})");
  create.at_most_once = true;
  absl::StatusOr<HttpResponse> r = SendAndWait(create, absl::Seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(SendStateOf(r.status()), SendState::kMaybeSent) << r.status();
  EXPECT_EQ(server_.drops(), 1);
  // The at-most-once body still arrives whole on a fresh connection.
  HttpRequest echo = Post(server_.Url("/echo"), R"({"b":2})");
  echo.at_most_once = true;
  absl::StatusOr<HttpResponse> ok = SendAndWait(echo, absl::Seconds(5));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->body, R"({"b":2})");
}

// The same fault on a query: libcurl may re-send it (no side effects).
TEST_F(CurlMultiTransportTest, QueryOnADroppedConnectionMayBeResent) {
  ASSERT_TRUE(
      SendAndWait(Post(server_.Url("/echo"), "{}"), absl::Seconds(5)).ok());
  absl::StatusOr<HttpResponse> r =
      SendAndWait(Post(server_.Url("/drop"), "{}"), absl::Seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(SendStateOf(r.status()), SendState::kMaybeSent) << r.status();
  EXPECT_GE(server_.drops(), 1);
}

// Finding 10: upstream bodies are bounded.
TEST_F(CurlMultiTransportTest, ResponseBodyOverTheCapFailsMaybeSent) {
  CurlMultiTransport::Options options;
  options.max_response_bytes = 1024;
  auto capped = *CurlMultiTransport::Create(loop_.get(), options);
  absl::StatusOr<HttpResponse> result = absl::UnknownError("no callback");
  absl::Notification done;
  capped->Send(Post(server_.Url("/echo"), std::string(4096, 'x')),
               absl::Now() + absl::Seconds(5),
               [&](absl::StatusOr<HttpResponse> r) {
                 result = std::move(r);
                 done.Notify();
               });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(SendStateOf(result.status()), SendState::kMaybeSent);
  EXPECT_NE(result.status().message().find("over 1024 bytes"),
            absl::string_view::npos)
      << result.status();
  capped.reset();
}

TEST_F(CurlMultiTransportTest, TimeoutAfterSendingIsMaybeSent) {
  absl::StatusOr<HttpResponse> r = SendAndWait(
      Post(server_.Url("/slow?ms=3000"), "{}"), absl::Milliseconds(300));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_EQ(SendStateOf(r.status()), SendState::kMaybeSent) << r.status();
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(CurlMultiTransportTest, ConnectionRefusedIsNotSent) {
  absl::StatusOr<HttpResponse> r = SendAndWait(
      Post(absl::StrCat("http://127.0.0.1:", ClosedPort(), "/x"), "{}"),
      absl::Seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(SendStateOf(r.status()), SendState::kNotSent) << r.status();
}

TEST_F(CurlMultiTransportTest, DeadlineAlreadyPassedIsNotSent) {
  absl::StatusOr<HttpResponse> r =
      SendAndWait(Post(server_.Url("/echo"), "{}"), -absl::Milliseconds(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(SendStateOf(r.status()), SendState::kNotSent);
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(CurlMultiTransportTest, HoldsTwoHundredSlowRequestsInFlightAtOnce) {
  constexpr int kRequests = 200;
  constexpr int kDelayMs = 500;
  absl::BlockingCounter remaining(kRequests);
  std::atomic<int> ok{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < kRequests; ++i) {
    transport_->Send(
        Post(server_.Url(absl::StrCat("/slow?ms=", kDelayMs)), "{}"),
        absl::Now() + absl::Seconds(20), [&](absl::StatusOr<HttpResponse> r) {
          if (r.ok() && r->status == 200) ok++;
          remaining.DecrementCount();
        });
  }
  remaining.Wait();
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(ok.load(), kRequests);
  // Sequentially this would take 100 s; concurrently about one delay.
  EXPECT_LT(elapsed, absl::Seconds(5)) << elapsed;
  EXPECT_EQ(server_.requests(), kRequests);
}

TEST_F(CurlMultiTransportTest, DestroyingCancelsRequestsInFlight) {
  absl::Notification done;
  absl::Status status;
  transport_->Send(Post(server_.Url("/slow?ms=5000"), "{}"),
                   absl::Now() + absl::Seconds(10),
                   [&](absl::StatusOr<HttpResponse> r) {
                     status = r.status();
                     done.Notify();
                   });
  // Let it reach the server.
  for (int i = 0; i < 200 && server_.requests() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  transport_.reset();
  ASSERT_TRUE(done.HasBeenNotified());
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(SendStateOf(status), SendState::kMaybeSent);
}

}  // namespace
}  // namespace payorch::paykka
