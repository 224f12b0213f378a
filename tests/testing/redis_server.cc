#include "tests/testing/redis_server.h"

#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace payorch::testing {
namespace {

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string RedisServerBinary() {
  if (const char* path = getenv("PATH")) {
    std::string dirs(path);
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string candidate =
          absl::StrCat(dirs.substr(start, end - start), "/redis-server");
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
  }
  return "/usr/bin/redis-server";
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return remove(path);
}

std::string ReplyText(const redisReply& r) {
  switch (r.type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(r.integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::vector<std::string> parts;
      for (size_t i = 0; i < r.elements; ++i) {
        parts.push_back(ReplyText(*r.element[i]));
      }
      return absl::StrJoin(parts, "\n");
    }
    default:
      return std::string(r.str, r.len);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    std::vector<std::string> extra_args) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  const char* tmpdir = getenv("TMPDIR");
  std::string base = absl::StrCat(tmpdir != nullptr ? tmpdir : "/tmp",
                                  "/payorch-redis-XXXXXX");
  if (mkdtemp(base.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", strerror(errno)));
  }
  server->dir_ = base;
  for (size_t i = 0; i + 1 < extra_args.size(); ++i) {
    if (extra_args[i] == "--requirepass") server->password_ = extra_args[i + 1];
  }
  server->extra_args_ = std::move(extra_args);
  // The port was free a moment ago; another process may take it in between,
  // so try a few.
  absl::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = FreeLoopbackPort();
    status = server->Spawn();
    if (status.ok()) status = server->WaitForPing();
    if (status.ok()) return server;
    server->Stop(SIGKILL).IgnoreError();
  }
  return status;
}

RedisServer::~RedisServer() {
  if (pid_ > 0) Stop(SIGKILL).IgnoreError();
  if (!dir_.empty()) nftw(dir_.c_str(), &RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string RedisServer::url() const {
  return absl::StrCat("redis://127.0.0.1:", port_);
}

absl::Status RedisServer::Spawn() {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  std::vector<std::string> args = {RedisServerBinary(),
                                   "--bind",
                                   "127.0.0.1",
                                   "--port",
                                   std::to_string(port_),
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--protected-mode",
                                   "yes",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir_ + "/redis.log"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  // Everything the child needs is prepared before fork(): between fork and
  // exec only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
      if (null_fd > 2) close(null_fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status RedisServer::WaitForPing() {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat(
          "redis-server exited during start-up (see ", dir_, "/redis.log)"));
    }
    auto pong = Command({"PING"}, password_);
    if (pong.ok() && *pong == "PONG") return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("redis-server did not answer PING");
}

absl::Status RedisServer::Stop(int signal) {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, signal);
  kill(pid_, SIGCONT);  // a paused server must run to act on SIGTERM
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  for (;;) {
    int wstatus = 0;
    pid_t r = waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) break;
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &wstatus, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status RedisServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("still running");
  absl::Status status = Spawn();
  if (status.ok()) status = WaitForPing();
  return status;
}

absl::Status RedisServer::Pause() {
  if (pid_ <= 0 || kill(pid_, SIGSTOP) != 0) {
    return absl::FailedPreconditionError("not running");
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Resume() {
  if (pid_ <= 0 || kill(pid_, SIGCONT) != 0) {
    return absl::FailedPreconditionError("not running");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RedisServer::Command(
    const std::vector<std::string>& args, const std::string& password,
    int db) const {
  timeval tv = absl::ToTimeval(absl::Seconds(2));
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err != 0) {
    std::string error = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(error);
  }
  redisSetTimeout(c, tv);
  auto run =
      [c](const std::vector<std::string>& argv) -> absl::StatusOr<std::string> {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const std::string& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(redisCommandArgv(
        c, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()));
    if (reply == nullptr) return absl::UnavailableError(c->errstr);
    std::string text = ReplyText(*reply);
    const bool error = reply->type == REDIS_REPLY_ERROR;
    freeReplyObject(reply);
    if (error) return absl::InternalError(text);
    return text;
  };
  absl::StatusOr<std::string> result = std::string();
  if (!password.empty()) result = run({"AUTH", password});
  if (result.ok() && db != 0) result = run({"SELECT", std::to_string(db)});
  if (result.ok()) result = run(args);
  redisFree(c);
  return result;
}

}  // namespace payorch::testing
