#ifndef PAYORCH_ADAPTERS_PAYKKA_CURL_TRANSPORT_H_
#define PAYORCH_ADAPTERS_PAYKKA_CURL_TRANSPORT_H_

// HttpTransport on libcurl's multi socket interface, driven by the
// EventLoop's libevent base (the pattern of libcurl's hiperfifo.c example).
//
// Threading: Send() may be called from any thread; it Posts to the loop.
// Every curl call (easy, multi, share) happens on the loop thread, so no curl
// lock callbacks are needed. A request in flight costs one easy handle and
// (while no idle connection can be reused) one socket: no thread, so
// thousands of requests can wait on PayKKa at once.
//
// Connections: one multi handle for the whole process, so HTTP/1.1
// keep-alive connections are reused across requests; a CURLSH share holds
// the TLS session cache and DNS cache so that new connections resume TLS
// sessions.
//
// At most once (HttpRequest::at_most_once, creates and charges): libcurl
// re-sends a request by itself when a reused connection dies before any
// reply byte. For these requests the body goes through a read callback that
// cannot rewind, so such a re-send fails (CURLE_SEND_FAIL_REWIND, maybe
// sent) instead of writing the request twice; they keep the keep-alive
// connection (no added handshake). A failure is kNotSent only if no byte of
// any attempt was written.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/paykka/http_transport.h"
#include "common/event_loop.h"

namespace payorch::paykka {

class CurlMultiTransport : public HttpTransport {
 public:
  struct Options {
    // CURLMOPT_MAX_HOST_CONNECTIONS. 0 = unlimited: with HTTP/1.1 each
    // request in flight needs its own connection, and a limit would make
    // curl queue requests behind PayKKa's 0.4-1.5 s latency, hiding
    // overload as latency. The process's fd limit is the real bound; raise
    // `ulimit -n` for 10,000 in flight.
    long max_host_connections = 0;
    // CURLMOPT_MAXCONNECTS: idle connections kept for reuse. 0 = curl's
    // default, 4x the transfers in the multi handle *at that moment*: while
    // most calls wait for signing, only a few are in curl, and curl closed
    // most connections after one use (a new TLS handshake every ~7 creates
    // in bench/run.sh). A fixed pool keeps them: ~30 KB each when idle.
    long max_idle_connections = 1024;
    // Upper bound on TCP connect + TLS handshake (further bounded by each
    // request's deadline).
    absl::Duration connect_timeout = absl::Seconds(5);
    // TLS peer verification. Only tests against plain HTTP leave this
    // irrelevant; never turn it off for PayKKa.
    bool verify_peer = true;
    // Extra CA bundle (PEM file); empty = the system's.
    std::string ca_file;
    // Upper bound of a response body (PayKKa's are a few KiB): a longer one
    // fails the call (kMaybeSent) instead of growing memory without bound.
    size_t max_response_bytes = 1 << 20;
    // The other at-most-once mechanism, measured by bench/at_most_once.sh:
    // a fresh connection (TCP + TLS handshake) for every at-most-once
    // request, closed after it. Off in production (the non-rewindable body
    // gives the same guarantee without the handshake).
    bool fresh_connection_for_at_most_once = false;
  };

  // Fails with kInternal if libcurl cannot be initialised.
  static absl::StatusOr<std::unique_ptr<CurlMultiTransport>> Create(
      EventLoop* loop, Options options);
  static absl::StatusOr<std::unique_ptr<CurlMultiTransport>> Create(
      EventLoop* loop) {
    return Create(loop, Options());
  }

  // Cancels requests still in flight (their callbacks run with kCancelled,
  // kMaybeSent) and frees curl's handles on the loop thread; blocks until
  // done. The loop must still be running (or this is the loop thread).
  ~CurlMultiTransport() override;

  void Send(HttpRequest request, absl::Time deadline,
            HttpCallback done) override;

  // Test hook: transfers in flight. Loop thread only.
  int InFlightForTesting() const;

  class Impl;

 private:
  explicit CurlMultiTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_CURL_TRANSPORT_H_
