#ifndef PAYORCH_TESTS_TESTING_REDIS_SERVER_H_
#define PAYORCH_TESTS_TESTING_REDIS_SERVER_H_

// A real redis-server for tests: loopback only, a free port, no persistence
// (--save '' --appendonly no), stdio to /dev/null (its log goes to a file in
// its own temporary directory), not daemonized so its PID is known. It can be
// stopped and started again on the same port to simulate an outage, or frozen
// with SIGSTOP to simulate a hung server. The child dies with the test process
// (PR_SET_PDEATHSIG) even if the test crashes. Not thread-safe.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace payorch::testing {

class RedisServer {
 public:
  // Starts redis-server (PATH, else /usr/bin/redis-server) with `extra_args`
  // appended (e.g. {"--requirepass", "pw"}) and waits for PING.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      std::vector<std::string> extra_args = {});
  // Kills the server by PID and removes its directory.
  ~RedisServer();

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // redis://127.0.0.1:<port> (no credentials).
  std::string url() const;

  // Stops the server with `signal` (SIGTERM: a clean shutdown; SIGKILL: a
  // crash) and waits for it to exit.
  absl::Status Stop(int signal = 15);
  // Starts it again on the same port, with the same arguments (data is gone:
  // there is no persistence).
  absl::Status Restart();
  // SIGSTOP / SIGCONT: the server keeps its connections but answers nothing.
  absl::Status Pause();
  absl::Status Resume();

  // Runs one command over a fresh blocking connection (AUTH with `password`
  // and SELECT `db` first when given). Returns the reply as text: strings
  // and status as is, integers in decimal, nil as "(nil)", arrays as their
  // elements joined by '\n'. kInternal for an error reply.
  absl::StatusOr<std::string> Command(const std::vector<std::string>& args,
                                      const std::string& password = "",
                                      int db = 0) const;
  // Command() on a Cluster replica, after READONLY (else it redirects).
  absl::StatusOr<std::string> ReplicaCommand(
      const std::vector<std::string>& args) const;

 private:
  RedisServer() = default;
  absl::Status Spawn();
  absl::Status WaitForPing();
  absl::StatusOr<std::string> Run(
      const std::vector<std::vector<std::string>>& commands) const;

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::vector<std::string> extra_args_;
  std::string password_;  // from --requirepass, for the PING probe
};

// A real Redis Cluster for tests: 2 * `primaries` RedisServers in cluster
// mode (one replica each) joined with `redis-cli --cluster create`, with a
// 1 s node timeout (a failover takes 1-3 s) and
// cluster-require-full-coverage off (a shard that is down fails only its own
// slots). Each node is a RedisServer above: stopped by PID, its directory
// (with nodes.conf) removed. Not thread-safe.
class RedisCluster {
 public:
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start(int primaries = 3);
  ~RedisCluster() = default;

  // redis+cluster://127.0.0.1:<port>,... with the first `primaries` nodes.
  std::string url() const;
  int size() const { return static_cast<int>(nodes_.size()); }
  RedisServer& node(int i) { return *nodes_[i]; }
  const RedisServer& node(int i) const { return *nodes_[i]; }

  // The running node that serves `key`'s slot as a primary, from a running
  // node's CLUSTER NODES view.
  absl::StatusOr<int> PrimaryForKey(const std::string& key) const;
  // Index of a running primary's replica.
  absl::StatusOr<int> ReplicaOf(int primary) const;
  // Runs `args` on the primary of `key` (for checks from tests).
  absl::StatusOr<std::string> CommandForKey(
      const std::string& key, const std::vector<std::string>& args) const;
  // Waits until every running node reports cluster_state:ok and sees
  // `primaries` primaries that are not failed, each with a connected replica
  // when `with_replicas`.
  absl::Status WaitUntilStable(absl::Duration timeout, bool with_replicas);
  // Moves `slots` slots from node `from` to node `to` with
  // `redis-cli --cluster reshard` (blocking; keys move with MIGRATE).
  absl::Status Reshard(int from, int to, int slots);
  // Waits until every running node reports the same slot layout.
  absl::Status WaitForAgreement(absl::Duration timeout) const;
  // The node id (CLUSTER MYID).
  absl::StatusOr<std::string> NodeId(int i) const;

 private:
  RedisCluster() = default;
  absl::StatusOr<std::string> Nodes() const;  // CLUSTER NODES from any node

  int primaries_ = 0;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_TESTING_REDIS_SERVER_H_
