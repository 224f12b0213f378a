#ifndef PAYORCH_COMMON_CRYPTO_H_
#define PAYORCH_COMMON_CRYPTO_H_

// Generic RSA keys, SHA256withRSA signatures, SHA-256, Base64 and
// percent-encoding on OpenSSL 3. PayKKa's recipe built from them (strings to
// sign, header names) is adapters/paykka/signing.h.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace payorch {

// An RSA private key. Copyable (shares the immutable key); thread-safe.
class RsaPrivateKey {
 public:
  // Parses a PKCS#8 key: a PEM block labelled "PRIVATE KEY" (PKCS#1's "RSA
  // PRIVATE KEY" label is accepted too) or the bare Base64 of the DER.
  // kInvalidArgument when the text is not an RSA private key. The error never
  // contains key material.
  static absl::StatusOr<RsaPrivateKey> Parse(absl::string_view text);
  // Generates a fresh key (tests, sandbox platform key). kInternal on failure.
  static absl::StatusOr<RsaPrivateKey> Generate(int bits = 2048);

  // SHA256withRSA (PKCS#1 v1.5) over `data`; the raw signature bytes.
  absl::StatusOr<std::string> SignSha256(absl::string_view data) const;
  // The key as a PKCS#8 PEM block.
  std::string ToPkcs8Pem() const;
  // The public half as an X.509 SubjectPublicKeyInfo PEM block.
  std::string PublicKeyPem() const;
  int bits() const;

 private:
  explicit RsaPrivateKey(std::shared_ptr<EVP_PKEY> key)
      : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// An RSA public key. Copyable; thread-safe.
class RsaPublicKey {
 public:
  // Parses a SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"), a PKCS#1 "BEGIN RSA
  // PUBLIC KEY" block, or bare Base64 of the SPKI DER. kInvalidArgument if not.
  static absl::StatusOr<RsaPublicKey> Parse(absl::string_view text);

  // OK when `signature` (raw bytes) is a valid SHA256withRSA signature of
  // `data`; kUnauthenticated otherwise.
  absl::Status VerifySha256(absl::string_view data,
                            absl::string_view signature) const;

 private:
  explicit RsaPublicKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// Standard Base64 with padding, no line breaks.
std::string Base64Encode(absl::string_view bytes);
// Accepts standard Base64 (padding optional, whitespace ignored).
// kInvalidArgument on other characters.
absl::StatusOr<std::string> Base64Decode(absl::string_view text);

// RFC 3986 percent-encoding: everything but ALPHA / DIGIT / "-" / "." / "_" /
// "~" is encoded as %XX (upper-case hex). So Base64's '+', '/', '=' become
// %2B, %2F, %3D, as PayKKa's clients (Java URLEncoder, encodeURIComponent) do.
std::string PercentEncode(absl::string_view text);
// Decodes %XX sequences; kInvalidArgument on a malformed escape.
absl::StatusOr<std::string> PercentDecode(absl::string_view text);

// `bytes` random bytes from OpenSSL's CSPRNG, hex-encoded (2*bytes chars).
std::string RandomHex(int bytes);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// Reads a whole file (keys, config). kNotFound / kPermissionDenied with the
// path (never the content) in the message.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// A TLS identity and trust bundle, as PEM text: `cert` starts with a
// certificate, `key` is a private key matching it, `ca` holds at least one
// certificate. kInvalidArgument naming the part (never the content).
absl::Status CheckTlsPem(absl::string_view cert, absl::string_view key,
                         absl::string_view ca);

}  // namespace payorch

#endif  // PAYORCH_COMMON_CRYPTO_H_
