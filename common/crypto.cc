#include "common/crypto.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace payorch {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::shared_ptr<EVP_PKEY> Wrap(EVP_PKEY* k) {
  return std::shared_ptr<EVP_PKEY>(k, PkeyDeleter());
}

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

BioPtr MemBio(absl::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())),
                &BIO_free);
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

bool IsRsa(EVP_PKEY* k) { return EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA; }

bool LooksLikePem(absl::string_view text) {
  return absl::StrContains(text, "-----BEGIN");
}

}  // namespace

// --- RsaPrivateKey ---

absl::StatusOr<RsaPrivateKey> RsaPrivateKey::Parse(absl::string_view text) {
  EVP_PKEY* k = nullptr;
  if (LooksLikePem(text)) {
    BioPtr bio = MemBio(text);
    k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  } else {
    absl::StatusOr<std::string> der = Base64Decode(text);
    if (!der.ok() || der->empty()) {
      return absl::InvalidArgumentError(
          "private key is neither PEM nor Base64 DER");
    }
    const unsigned char* p =
        reinterpret_cast<const unsigned char*>(der->data());
    // d2i_AutoPrivateKey accepts PKCS#8 and the traditional (PKCS#1) forms.
    k = d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der->size()));
  }
  ERR_clear_error();
  if (k == nullptr) {
    return absl::InvalidArgumentError("cannot parse RSA private key");
  }
  std::shared_ptr<EVP_PKEY> key = Wrap(k);
  if (!IsRsa(k)) return absl::InvalidArgumentError("key is not an RSA key");
  return RsaPrivateKey(std::move(key));
}

absl::StatusOr<RsaPrivateKey> RsaPrivateKey::Generate(int bits) {
  EVP_PKEY* k = EVP_RSA_gen(static_cast<unsigned int>(bits));
  if (k == nullptr) {
    ERR_clear_error();
    return absl::InternalError("RSA key generation failed");
  }
  return RsaPrivateKey(Wrap(k));
}

absl::StatusOr<std::string> RsaPrivateKey::SignSha256(
    absl::string_view data) const {
  MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  size_t len = 0;
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len,
                     reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("EVP_DigestSign init failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("EVP_DigestSign failed");
  }
  sig.resize(len);
  return sig;
}

std::string RsaPrivateKey::ToPkcs8Pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0,
                                nullptr, nullptr);
  return BioToString(bio.get());
}

std::string RsaPrivateKey::PublicKeyPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), key_.get());
  return BioToString(bio.get());
}

int RsaPrivateKey::bits() const { return EVP_PKEY_get_bits(key_.get()); }

// --- RsaPublicKey ---

absl::StatusOr<RsaPublicKey> RsaPublicKey::Parse(absl::string_view text) {
  EVP_PKEY* k = nullptr;
  if (LooksLikePem(text)) {
    if (absl::StrContains(text, "BEGIN RSA PUBLIC KEY")) {
      // PKCS#1 RSAPublicKey: take the DER out of the PEM and decode it.
      BioPtr bio = MemBio(text);
      char* name = nullptr;
      char* header = nullptr;
      unsigned char* der = nullptr;
      long len = 0;
      if (PEM_read_bio(bio.get(), &name, &header, &der, &len) == 1) {
        const unsigned char* p = der;
        k = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len);
      }
      OPENSSL_free(name);
      OPENSSL_free(header);
      OPENSSL_free(der);
    } else {
      BioPtr bio = MemBio(text);
      k = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    }
  } else {
    absl::StatusOr<std::string> der = Base64Decode(text);
    if (!der.ok() || der->empty()) {
      return absl::InvalidArgumentError(
          "public key is neither PEM nor Base64 DER");
    }
    const unsigned char* p =
        reinterpret_cast<const unsigned char*>(der->data());
    k = d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size()));
  }
  ERR_clear_error();
  if (k == nullptr) {
    return absl::InvalidArgumentError("cannot parse RSA public key");
  }
  std::shared_ptr<EVP_PKEY> key = Wrap(k);
  if (!IsRsa(k)) return absl::InvalidArgumentError("key is not an RSA key");
  return RsaPublicKey(std::move(key));
}

absl::Status RsaPublicKey::VerifySha256(absl::string_view data,
                                        absl::string_view signature) const {
  MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(),
                                             nullptr, key_.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("EVP_DigestVerifyInit failed");
  }
  int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
      signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
      data.size());
  ERR_clear_error();
  if (rc != 1) return absl::UnauthenticatedError("signature does not verify");
  return absl::OkStatus();
}

// --- encodings ---

std::string Base64Encode(absl::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = b[i] << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    uint32_t v = (b[i] << 16) | (b[i + 1] << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(absl::string_view text) {
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int nbits = 0;
  bool padding = false;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      padding = true;
      continue;
    } else if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      continue;
    } else {
      return absl::InvalidArgumentError("invalid Base64 character");
    }
    if (padding) {
      return absl::InvalidArgumentError("Base64 data after padding");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((acc >> nbits) & 0xFF));
    }
  }
  // 6 leftover bits cannot come from whole bytes.
  if (nbits >= 6) return absl::InvalidArgumentError("truncated Base64");
  return out;
}

std::string PercentEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 8 * 2);
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) {
      return absl::InvalidArgumentError("truncated percent escape");
    }
    int hi = hex(text[i + 1]);
    int lo = hex(text[i + 2]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError("invalid percent escape");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::string RandomHex(int bytes) {
  std::string raw(static_cast<size_t>(bytes), '\0');
  if (bytes > 0) {
    RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

absl::Status CheckTlsPem(absl::string_view cert, absl::string_view key,
                         absl::string_view ca) {
  using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
  auto first_cert = [](absl::string_view pem) {
    BioPtr bio = MemBio(pem);
    return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                   &X509_free);
  };
  X509Ptr leaf = first_cert(cert);
  if (leaf == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: no PEM certificate");
  }
  BioPtr key_bio = MemBio(key);
  std::shared_ptr<EVP_PKEY> pkey =
      Wrap(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("key: not a PEM private key");
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("key does not match the certificate");
  }
  if (first_cert(ca) == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CA bundle: no PEM certificate");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == EACCES) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot read ", path, ": permission denied"));
    }
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(err)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace payorch
