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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cache/hiredis_handles.h"
#include "tests/testing/subprocess.h"

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

// For cluster mode: Redis also listens on port + 10000 (the cluster bus), so
// the port must be <= 55535 and that one free as well.
int FreeClusterPort() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = FreeLoopbackPort();
    if (port <= 0 || port > 55535) continue;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port + 10000));
    const bool bus_free =
        bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (bus_free) return port;
  }
  return -1;
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
  const bool cluster =
      std::find(server->extra_args_.begin(), server->extra_args_.end(),
                "--cluster-enabled") != server->extra_args_.end();
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = cluster ? FreeClusterPort() : FreeLoopbackPort();
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
  std::vector<std::vector<std::string>> commands;
  if (!password.empty()) commands.push_back({"AUTH", password});
  if (db != 0) commands.push_back({"SELECT", std::to_string(db)});
  commands.push_back(args);
  return Run(commands);
}

absl::StatusOr<std::string> RedisServer::ReplicaCommand(
    const std::vector<std::string>& args) const {
  return Run({{"READONLY"}, args});
}

// Runs `commands` in order on one fresh connection; the last one's reply.
absl::StatusOr<std::string> RedisServer::Run(
    const std::vector<std::vector<std::string>>& commands) const {
  timeval tv = absl::ToTimeval(absl::Seconds(2));
  cache::RedisContextPtr c(redisConnectWithTimeout("127.0.0.1", port_, tv));
  if (c == nullptr || c->err != 0) {
    return absl::UnavailableError(c != nullptr ? c->errstr : "out of memory");
  }
  redisSetTimeout(c.get(), tv);
  auto run =
      [&c](
          const std::vector<std::string>& argv) -> absl::StatusOr<std::string> {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const std::string& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    cache::RedisReplyPtr reply(static_cast<redisReply*>(redisCommandArgv(
        c.get(), static_cast<int>(ptrs.size()), ptrs.data(), lens.data())));
    if (reply == nullptr) return absl::UnavailableError(c->errstr);
    std::string text = ReplyText(*reply);
    if (reply->type == REDIS_REPLY_ERROR) return absl::InternalError(text);
    return text;
  };
  absl::StatusOr<std::string> result = std::string();
  for (const auto& command : commands) {
    result = run(command);
    if (!result.ok()) break;
  }
  return result;
}

}  // namespace payorch::testing

namespace payorch::testing {
namespace {

// One line of CLUSTER NODES.
struct NodeLine {
  std::string id;
  int port = 0;
  std::vector<std::string> flags;
  std::string master_id;
  std::vector<std::pair<int, int>> slots;

  bool Has(absl::string_view flag) const {
    return std::find(flags.begin(), flags.end(), flag) != flags.end();
  }
};

std::vector<NodeLine> ParseNodes(const std::string& text) {
  std::vector<NodeLine> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 8) continue;
    NodeLine n;
    n.id = f[0];
    absl::string_view addr = f[1];
    addr = addr.substr(0, addr.find('@'));
    absl::SimpleAtoi(addr.substr(addr.rfind(':') + 1), &n.port);
    n.flags = absl::StrSplit(f[2], ',');
    n.master_id = f[3];
    for (size_t i = 8; i < f.size(); ++i) {
      if (f[i].empty() || f[i][0] == '[') continue;  // migrating/importing
      std::pair<std::string, std::string> range = absl::StrSplit(f[i], '-');
      int first = 0, last = 0;
      if (!absl::SimpleAtoi(range.first, &first)) continue;
      if (range.second.empty() || !absl::SimpleAtoi(range.second, &last)) {
        last = first;
      }
      n.slots.emplace_back(first, last);
    }
    out.push_back(std::move(n));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start(
    int primaries) {
  std::unique_ptr<RedisCluster> cluster(new RedisCluster());
  cluster->primaries_ = primaries;
  std::string create = "redis-cli --cluster create";
  for (int i = 0; i < 2 * primaries; ++i) {
    auto node = RedisServer::Start(
        {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
         "--cluster-node-timeout", "1000", "--cluster-require-full-coverage",
         "no", "--cluster-replica-validity-factor", "0",
         "--repl-diskless-sync-delay", "0"});
    if (!node.ok()) return node.status();
    absl::StrAppend(&create, " 127.0.0.1:", (*node)->port());
    cluster->nodes_.push_back(*std::move(node));
  }
  absl::StrAppend(&create, " --cluster-replicas 1 --cluster-yes");
  if (auto out = RunCommand(create + " >/dev/null"); !out.ok()) {
    return out.status();
  }
  if (absl::Status s = cluster->WaitUntilStable(absl::Seconds(30), true);
      !s.ok()) {
    return s;
  }
  return cluster;
}

std::string RedisCluster::url() const {
  std::vector<std::string> seeds;
  for (int i = 0; i < primaries_; ++i) {
    seeds.push_back(absl::StrCat("127.0.0.1:", nodes_[i]->port()));
  }
  return absl::StrCat("redis+cluster://", absl::StrJoin(seeds, ","));
}

absl::StatusOr<std::string> RedisCluster::Nodes() const {
  absl::Status last = absl::UnavailableError("no node is running");
  for (const auto& node : nodes_) {
    if (!node->running()) continue;
    auto text = node->Command({"CLUSTER", "NODES"});
    if (text.ok()) return text;
    last = text.status();
  }
  return last;
}

absl::StatusOr<int> RedisCluster::PrimaryForKey(const std::string& key) const {
  absl::StatusOr<std::string> slot_text = absl::UnavailableError("no node");
  for (const auto& node : nodes_) {
    if (node->running()) {
      slot_text = node->Command({"CLUSTER", "KEYSLOT", key});
      break;
    }
  }
  int slot = 0;
  if (!slot_text.ok()) return slot_text.status();
  if (!absl::SimpleAtoi(*slot_text, &slot)) {
    return absl::InternalError("CLUSTER KEYSLOT: " + *slot_text);
  }
  auto text = Nodes();
  if (!text.ok()) return text.status();
  for (const NodeLine& n : ParseNodes(*text)) {
    if (!n.Has("master")) continue;
    for (auto [first, last] : n.slots) {
      if (slot < first || slot > last) continue;
      for (int i = 0; i < size(); ++i) {
        if (nodes_[i]->port() == n.port) return i;
      }
    }
  }
  return absl::NotFoundError(absl::StrCat("no primary serves slot ", slot));
}

absl::StatusOr<int> RedisCluster::ReplicaOf(int primary) const {
  auto id = NodeId(primary);
  auto text = Nodes();
  if (!id.ok()) return id.status();
  if (!text.ok()) return text.status();
  for (const NodeLine& n : ParseNodes(*text)) {
    if (n.master_id != *id || n.Has("fail")) continue;
    for (int i = 0; i < size(); ++i) {
      if (nodes_[i]->port() == n.port && nodes_[i]->running()) return i;
    }
  }
  return absl::NotFoundError("no running replica");
}

absl::StatusOr<std::string> RedisCluster::CommandForKey(
    const std::string& key, const std::vector<std::string>& args) const {
  auto primary = PrimaryForKey(key);
  if (!primary.ok()) return primary.status();
  return nodes_[*primary]->Command(args);
}

absl::StatusOr<std::string> RedisCluster::NodeId(int i) const {
  return nodes_[i]->Command({"CLUSTER", "MYID"});
}

absl::Status RedisCluster::WaitUntilStable(absl::Duration timeout,
                                           bool with_replicas) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string why;
  while (absl::Now() < deadline) {
    why.clear();
    int live_primaries = 0;
    for (const auto& node : nodes_) {
      if (!node->running()) continue;
      auto info = node->Command({"CLUSTER", "INFO"});
      if (!info.ok() || !absl::StrContains(*info, "cluster_state:ok")) {
        why = absl::StrCat("node ", node->port(), " not ok");
        break;
      }
      auto role = node->Command({"ROLE"});
      if (!role.ok() || !absl::StartsWith(*role, "master")) continue;
      ++live_primaries;
      // ROLE, flattened: master, offset, then ip/port/offset per replica.
      if (with_replicas && std::count(role->begin(), role->end(), '\n') < 4) {
        why = absl::StrCat("primary ", node->port(), " has no replica yet");
      }
    }
    if (why.empty() && live_primaries != primaries_) {
      why = absl::StrCat(live_primaries, " live primaries");
    }
    if (why.empty()) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError("Redis Cluster not stable: " + why);
}

namespace {

// The slot layout as one node sees it: "id:first-last ..." of its primaries.
std::string SlotSignature(const std::string& nodes_text) {
  std::vector<std::string> parts;
  for (const NodeLine& n : ParseNodes(nodes_text)) {
    if (!n.Has("master")) continue;
    for (auto [first, last] : n.slots) {
      parts.push_back(absl::StrCat(n.id, ":", first, "-", last));
    }
  }
  std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, " ");
}

}  // namespace

absl::Status RedisCluster::WaitForAgreement(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::set<std::string> views;
    bool all = true;
    for (const auto& node : nodes_) {
      if (!node->running()) continue;
      auto text = node->Command({"CLUSTER", "NODES"});
      if (!text.ok()) {
        all = false;
        break;
      }
      views.insert(SlotSignature(*text));
    }
    if (all && views.size() == 1) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError("Cluster nodes disagree on slots");
}

absl::Status RedisCluster::Reshard(int from, int to, int slots) {
  // redis-cli refuses to reshard while nodes disagree on the layout (as
  // they do for a moment after the previous reshard).
  if (absl::Status s = WaitForAgreement(absl::Seconds(10)); !s.ok()) return s;
  auto from_id = NodeId(from);
  auto to_id = NodeId(to);
  if (!from_id.ok()) return from_id.status();
  if (!to_id.ok()) return to_id.status();
  auto out = RunCommand(absl::StrCat(
      "redis-cli --cluster reshard 127.0.0.1:", nodes_[from]->port(),
      " --cluster-from ", *from_id, " --cluster-to ", *to_id,
      " --cluster-slots ", slots, " --cluster-yes >/dev/null"));
  return out.status();
}

}  // namespace payorch::testing
