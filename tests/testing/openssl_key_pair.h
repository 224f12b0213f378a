#ifndef PAYORCH_TESTS_TESTING_OPENSSL_KEY_PAIR_H_
#define PAYORCH_TESTS_TESTING_OPENSSL_KEY_PAIR_H_

// A test suite base with one RSA-2048 key pair made by the openssl CLI, shared
// by the suite: priv.pem and pub.pem in dir_.

#include <string>

#include "common/crypto.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace payorch::testing {

class OpensslKeyPairTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(RunCommand("openssl genpkey -algorithm RSA -pkeyopt "
                           "rsa_keygen_bits:2048 -out " +
                           dir_->File("priv.pem") + " 2>/dev/null")
                    .ok());
    ASSERT_TRUE(RunCommand("openssl pkey -in " + dir_->File("priv.pem") +
                           " -pubout -out " + dir_->File("pub.pem"))
                    .ok());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Read(const std::string& name) {
    return *ReadFile(dir_->File(name));
  }
  static inline TempDir* dir_ = nullptr;
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_TESTING_OPENSSL_KEY_PAIR_H_
