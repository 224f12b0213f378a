#include "sandbox/tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "absl/strings/str_cat.h"

namespace payorch::sandbox {
namespace {

std::string OpensslError() {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsServerContext>> TlsServerContext::Load(
    const std::string& cert_chain_file, const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  std::unique_ptr<TlsServerContext> out(new TlsServerContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_chain_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS certificate ", cert_chain_file, ": ", OpensslError()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) !=
          1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file, ": ", OpensslError()));
  }
  return out;
}

TlsServerContext::~TlsServerContext() { SSL_CTX_free(ctx_); }

bufferevent* TlsServerContext::NewAcceptingBufferevent(event_base* base) {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  // BEV_OPT_CLOSE_ON_FREE frees the SSL and closes the socket with it.
  bufferevent* bev = bufferevent_openssl_socket_new(
      base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  // Clients often close without a close_notify; that is not an error here.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

bool TlsServerContext::SessionReused(bufferevent* bev) {
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  return ssl != nullptr && SSL_session_reused(ssl) == 1;
}

}  // namespace payorch::sandbox
