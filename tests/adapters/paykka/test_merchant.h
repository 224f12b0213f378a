#ifndef PAYORCH_TESTS_ADAPTERS_PAYKKA_TEST_MERCHANT_H_
#define PAYORCH_TESTS_ADAPTERS_PAYKKA_TEST_MERCHANT_H_

// Keys and merchants for the adapter's tests. Keys are generated at test
// time (never committed) and shared within one test binary.

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "adapters/paykka/paykka_client.h"
#include "common/crypto.h"
#include "gtest/gtest.h"

namespace payorch::paykka::testing {

// A process-wide 2048-bit key (generated once; RSA keygen takes ~100 ms).
inline RsaPrivateKey GenerateTestKey() {
  absl::StatusOr<RsaPrivateKey> k = RsaPrivateKey::Generate(2048);
  if (!k.ok()) std::abort();
  return *std::move(k);
}

// Two process-wide 2048-bit keys (generated once, thread-safe statics).
inline const RsaPrivateKey& TestKey(int which = 0) {
  static const RsaPrivateKey* const k0 = new RsaPrivateKey(GenerateTestKey());
  static const RsaPrivateKey* const k1 = new RsaPrivateKey(GenerateTestKey());
  return which == 0 ? *k0 : *k1;
}

// Merchant "M1" signing with TestKey(0); PayKKa's platform key is
// TestKey(1) when `verify` is set.
inline MerchantConfig TestMerchant(
    bool verify = false, std::string base_url = "http://paykka.test") {
  std::optional<RsaPublicKey> platform;
  if (verify) {
    absl::StatusOr<RsaPublicKey> pub =
        RsaPublicKey::Parse(TestKey(1).PublicKeyPem());
    if (!pub.ok()) std::abort();
    platform = *pub;
  }
  return MerchantConfig{"M1",   "A1",      TestKey(0),         platform,
                        verify, "ck_test", std::move(base_url)};
}

}  // namespace payorch::paykka::testing

#endif  // PAYORCH_TESTS_ADAPTERS_PAYKKA_TEST_MERCHANT_H_
