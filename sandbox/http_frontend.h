#ifndef PAYORCH_SANDBOX_HTTP_FRONTEND_H_
#define PAYORCH_SANDBOX_HTTP_FRONTEND_H_

// The sandbox's HTTP plumbing: the plain and HTTPS evhttp listeners on the
// loop thread, the requests not answered yet, signed replies (RSA on a small
// worker pool, so the loop stays responsive while thousands of requests are
// held open), closes and resets, held requests, and connection counters.
// Every method runs on the loop thread, except StopSigning.

#include <event2/util.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/crypto.h"
#include "common/event_loop.h"
#include "sandbox/server.h"
#include "sandbox/store.h"
#include "sandbox/tls.h"

struct bufferevent;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;
struct event;

namespace payorch::sandbox {

enum class Method { kGet, kHead, kPost, kPut, kDelete, kOther };

// A request as read, valid for the duration of the handler call.
struct Request {
  uint64_t id = 0;
  Method method = Method::kOther;
  std::string path;    // without the query
  std::string target;  // the path with "?query" as sent (it is signed)
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool reused = false;  // not the first request on its connection
  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* Header(const char* name) const;
};

constexpr char kJsonContentType[] = "application/json; charset=utf-8";

class HttpFrontend {
 public:
  using Handler = std::function<void(const Request&)>;

  HttpFrontend(EventLoop* loop, const ServerOptions& options,
               RsaPrivateKey platform_key);
  ~HttpFrontend();

  // Loads the TLS material (any thread, before Listen).
  absl::Status LoadTls();
  // Binds the listeners; every request goes to `handler`.
  absl::Status Listen(Handler handler);
  // Finishes signing jobs (their replies are posted to the loop). Not on
  // the loop thread.
  void StopSigning() { pool_.reset(); }
  // Drops open requests and closes the listeners.
  void Shutdown();
  int port() const { return port_; }
  int tls_port() const { return tls_port_; }

  // Counts the request in in_flight until it is answered or forgotten.
  void CountInFlight(uint64_t id);
  // Whether the request is still open (not answered, client still there).
  bool IsOpen(uint64_t id) const { return Find(id) != nullptr; }

  // Signs (off the loop) and sends the reply. `bad_signature`: a real
  // signature over different bytes.
  void Reply(uint64_t id, int status, std::string body,
             const char* content_type = kJsonContentType,
             bool bad_signature = false);
  void ReplyJson(uint64_t id, int status, const Json& j) {
    Reply(id, status, DumpJson(j));
  }
  // Sends without x-paykka-* headers, with this reason phrase.
  void ReplyUnsigned(uint64_t id, int status, const std::string& body,
                     const char* content_type, const char* reason);
  // 303 See Other to `location` (unsigned, an HTML body for old clients).
  void ReplyRedirect(uint64_t id, const std::string& location,
                     const std::string& html);
  // Closes the connection without a reply: an RST, or a FIN.
  void Close(uint64_t id, bool rst);
  // Never answers: closes (RST) after max_hold, or forgets the request as
  // soon as the client hangs up (evhttp does not notice that by itself
  // while a request is unanswered).
  void Hold(uint64_t id);

  Json Counters() const;  // in_flight, max_in_flight, connections, tls_*
  void ResetCounters();

 private:
  struct Pending;
  static void OnRequest(evhttp_request* req, void* arg);
  static bufferevent* OnNewConnection(event_base* base, void* arg);
  static bufferevent* OnNewTlsConnection(event_base* base, void* arg);
  static void OnConnectionClosed(evhttp_connection* conn, void* arg);
  static void OnHeldPoll(evutil_socket_t, short, void* arg);
  evhttp* NewHttp(bool tls);
  absl::Status Accept(evhttp* http, const std::string& host, int* port);
  void Handle(evhttp_request* req);
  bool CountConnection(evhttp_request* req);
  Pending* Find(uint64_t id) const;
  void Forget(Pending* p);
  void SendNow(uint64_t id, int status, const std::string& body,
               const std::string& content_type, const std::string& ts,
               const std::string& nonce, const std::string& sign,
               const char* reason = nullptr);

  EventLoop* loop_;
  const ServerOptions& options_;
  RsaPrivateKey platform_key_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<TlsServerContext> tls_;
  Handler handler_;
  evhttp* http_ = nullptr;
  evhttp* https_ = nullptr;
  int port_ = 0;
  int tls_port_ = -1;
  bool shutting_down_ = false;

  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending_;
  int64_t in_flight_ = 0;
  int64_t max_in_flight_ = 0;

  // Requests held by Hold(), polled for client close.
  std::set<uint64_t> held_;
  event* held_poll_ = nullptr;

  // Buffer events of accepted connections that have not carried a request
  // yet (true: TLS): a request on any other connection is a keep-alive
  // reuse. Connections that carried a request, and how many of the TLS ones
  // resumed a session.
  std::map<bufferevent*, bool> fresh_connections_;
  int64_t connections_ = 0;
  int64_t tls_connections_ = 0;
  int64_t tls_resumed_connections_ = 0;
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_HTTP_FRONTEND_H_
