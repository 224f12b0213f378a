#ifndef PAYORCH_TESTS_TESTING_SUBPROCESS_H_
#define PAYORCH_TESTS_TESTING_SUBPROCESS_H_

// Test helpers that run real processes (redis-server, paykka-sandbox,
// payorchd) and stop them by PID.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace payorch::testing {

// A child process. Its stdout is a pipe the test can read lines from; stderr
// goes to `stderr_path` (or is inherited when empty). The destructor sends
// SIGTERM, waits up to 5 s, then SIGKILLs. Not thread-safe.
class Subprocess {
 public:
  // Starts argv[0] (looked up in PATH if it has no '/') with `argv`.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      std::vector<std::string> argv, std::string stderr_path = "",
      std::vector<std::string> extra_env = {});
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Reads one line of the child's stdout (without the newline).
  // kDeadlineExceeded after `timeout`, kUnavailable when the child closed it.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);
  // Reads lines until one starts with `prefix`; returns that line.
  absl::StatusOr<std::string> WaitForLine(const std::string& prefix,
                                          absl::Duration timeout);
  // Sends `signal`; Wait()s when `wait` is set. Returns the exit status
  // (as from waitpid) or an error.
  absl::StatusOr<int> Signal(int signal, bool wait = true,
                             absl::Duration timeout = absl::Seconds(10));
  // Waits for the child to exit; kDeadlineExceeded after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  bool Running();

 private:
  Subprocess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}
  pid_t pid_;
  int stdout_fd_;
  bool exited_ = false;
  int exit_status_ = 0;
  std::string buffer_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it,
// close). Callers that can pass port 0 to a server should prefer that.
int PickFreePort();

// A fresh directory under $TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes `content` to File(name) with mode 0600; returns the path.
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// Runs a shell command and returns its stdout; kInternal with stderr when it
// exits non-zero. For `openssl` test vectors and redis-cli.
absl::StatusOr<std::string> RunCommand(const std::string& shell_command);

// Path of a built binary: $PAYORCH_BIN_DIR/<name> (CTest sets it), else
// <dir of the test binary>/../../<name> search fallbacks.
std::string BinaryPath(const std::string& name);

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_TESTING_SUBPROCESS_H_
