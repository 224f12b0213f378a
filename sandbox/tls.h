#ifndef PAYORCH_SANDBOX_TLS_H_
#define PAYORCH_SANDBOX_TLS_H_

// TLS for the sandbox's HTTPS listener: an OpenSSL server context and the
// libevent OpenSSL buffer events evhttp reads requests from. Session
// resumption (TLS 1.3 tickets, TLS 1.2 session cache) is on, as a public
// server has it, so a client's resumption can be observed.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

struct bufferevent;
struct event_base;
typedef struct ssl_ctx_st SSL_CTX;

namespace payorch::sandbox {

class TlsServerContext {
 public:
  // Loads a PEM certificate chain and its private key. kInvalidArgument
  // naming the file that does not load.
  static absl::StatusOr<std::unique_ptr<TlsServerContext>> Load(
      const std::string& cert_chain_file, const std::string& key_file);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // A buffer event that accepts a TLS connection on the socket evhttp sets
  // later (for evhttp_set_bevcb). nullptr on failure.
  bufferevent* NewAcceptingBufferevent(event_base* base);

  // Whether the TLS session of `bev` (one made by NewAcceptingBufferevent)
  // was resumed rather than fully negotiated.
  static bool SessionReused(bufferevent* bev);

 private:
  explicit TlsServerContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_TLS_H_
