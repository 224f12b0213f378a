#include "tests/testing/tls.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace payorch::testing {

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
      PAYORCH_SOURCE_DIR "/tests/testing/make_test_certs.sh '", dir, "'"));
  if (!out.ok()) return out.status();
  return TestCertificates{dir + "/ca.pem", dir + "/server.pem",
                          dir + "/server.key"};
}

std::string MtlsCertificates::ClientCert(const std::string& name) const {
  return absl::StrCat(dir, "/client-", name, ".pem");
}
std::string MtlsCertificates::ClientKey(const std::string& name) const {
  return absl::StrCat(dir, "/client-", name, ".key");
}

absl::StatusOr<MtlsCertificates> SharedMtlsCertificates() {
  // Made once per process (about 0.5 s) and removed at exit.
  static const TempDir dir;
  static const absl::StatusOr<std::string> made = RunCommand(
      absl::StrCat(PAYORCH_SOURCE_DIR "/scripts/make_mtls_certs.sh '",
                   dir.path(), "' ", kAdminIdentity, " ", kCheckoutIdentity));
  if (!made.ok()) return made.status();
  return MtlsCertificates{dir.path(), dir.File("ca.pem"),
                          dir.File("server.pem"), dir.File("server.key")};
}

absl::StatusOr<std::unique_ptr<RttRelay>> RttRelay::Start(int target_port,
                                                          absl::Duration rtt) {
  absl::StatusOr<std::unique_ptr<Subprocess>> proc =
      Subprocess::Start({BinaryPath("rtt-relay"), "--listen=127.0.0.1:0",
                         absl::StrCat("--target=127.0.0.1:", target_port),
                         absl::StrCat("--rtt=", absl::FormatDuration(rtt))});
  if (!proc.ok()) return proc.status();
  absl::StatusOr<std::string> line =
      (*proc)->WaitForLine("listening ", absl::Seconds(10));
  if (!line.ok()) return line.status();
  int port = 0;
  if (!absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &port)) {
    return absl::InternalError("rtt-relay printed " + *line);
  }
  return std::unique_ptr<RttRelay>(new RttRelay(*std::move(proc), port));
}

}  // namespace payorch::testing
