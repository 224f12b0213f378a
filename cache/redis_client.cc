#include "cache/redis_client.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "cache/redis_cluster.h"
#include "common/crypto.h"
#include "common/trace_context.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace payorch::cache {
namespace {

// "[user]:password" (percent-encoded) into `endpoint`.
absl::Status ParseCredentials(absl::string_view userinfo,
                              RedisEndpoint& endpoint) {
  size_t colon = userinfo.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "Redis URL: credentials must be [user]:password@");
  }
  auto user = PercentDecode(userinfo.substr(0, colon));
  auto password = PercentDecode(userinfo.substr(colon + 1));
  if (!user.ok() || !password.ok()) {
    return absl::InvalidArgumentError(
        "Redis URL: malformed %-escape in the credentials");
  }
  endpoint.user = *std::move(user);
  endpoint.password = *std::move(password);
  return absl::OkStatus();
}

// "host[:port]" or "[IPv6][:port]" into `endpoint`.
absl::Status ParseHostPort(absl::string_view authority,
                           RedisEndpoint& endpoint) {
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("Redis URL: unterminated [IPv6] host");
    }
    endpoint.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("Redis URL: junk after [IPv6] host");
    }
    port_text = after;
  } else if (size_t colon = authority.rfind(':');
             colon != absl::string_view::npos) {
    endpoint.host = std::string(authority.substr(0, colon));
    port_text = authority.substr(colon + 1);
  } else {
    endpoint.host = std::string(authority);
  }
  if (endpoint.host.empty()) {
    return absl::InvalidArgumentError("Redis URL: missing host");
  }
  if (!port_text.empty() && (!absl::SimpleAtoi(port_text, &endpoint.port) ||
                             endpoint.port <= 0 || endpoint.port > 65535)) {
    return absl::InvalidArgumentError("Redis URL: bad port");
  }
  return absl::OkStatus();
}

// Splits "[userinfo@]hosts[/path]" and fills the credentials.
absl::Status SplitAuthority(absl::string_view rest, absl::string_view& hosts,
                            absl::string_view& path, RedisEndpoint& endpoint) {
  hosts = rest;
  path = {};
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    hosts = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (size_t at = hosts.rfind('@'); at != absl::string_view::npos) {
    if (absl::Status s = ParseCredentials(hosts.substr(0, at), endpoint);
        !s.ok()) {
      return s;
    }
    hosts = hosts.substr(at + 1);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RedisEndpoint> ParseRedisUri(const std::string& uri) {
  // Messages never echo the URL: it may hold a password.
  absl::string_view rest(uri);
  if (absl::StartsWith(rest, "rediss://")) {
    return absl::InvalidArgumentError(
        "rediss:// (TLS) is not supported (hiredis 0.14 has no TLS)");
  }
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return absl::InvalidArgumentError(
        "Redis URL must look like redis://[[user]:password@]host[:port][/db] "
        "or redis+cluster://[[user]:password@]host:port[,host:port...]");
  }
  RedisEndpoint endpoint;
  absl::string_view authority, path;
  if (absl::Status s = SplitAuthority(rest, authority, path, endpoint);
      !s.ok()) {
    return s;
  }
  if (!path.empty() &&
      (!absl::SimpleAtoi(path, &endpoint.db) || endpoint.db < 0)) {
    return absl::InvalidArgumentError(
        "Redis URL: the path must be a database number");
  }
  if (absl::Status s = ParseHostPort(authority, endpoint); !s.ok()) return s;
  return endpoint;
}

absl::StatusOr<RedisTarget> ParseRedisUrl(const std::string& url) {
  absl::string_view rest(url);
  if (!absl::ConsumePrefix(&rest, "redis+cluster://")) {
    auto endpoint = ParseRedisUri(url);
    if (!endpoint.ok()) return endpoint.status();
    return RedisTarget{false, {*std::move(endpoint)}};
  }
  RedisEndpoint credentials;
  absl::string_view hosts, path;
  if (absl::Status s = SplitAuthority(rest, hosts, path, credentials);
      !s.ok()) {
    return s;
  }
  if (!path.empty() && path != "0") {
    return absl::InvalidArgumentError(
        "Redis URL: a Cluster has only database 0");
  }
  RedisTarget target{true, {}};
  for (absl::string_view seed : absl::StrSplit(hosts, ',')) {
    RedisEndpoint endpoint = credentials;
    if (absl::Status s = ParseHostPort(seed, endpoint); !s.ok()) return s;
    target.endpoints.push_back(std::move(endpoint));
  }
  return target;
}

// Times commands into the histogram and tells the observer.
class RedisClient::Instrumentation {
 public:
  Instrumentation(prometheus::Registry* registry, RedisCommandObserver observer)
      : duration_(registry == nullptr
                      ? nullptr
                      : &prometheus::BuildHistogram()
                             .Name("payorch_redis_command_duration_seconds")
                             .Help("Redis commands by command and outcome: "
                                   "latency from Command() to the reply or "
                                   "failure (queueing included).")
                             .Register(*registry)),
        observer_(std::move(observer)) {}

  bool active() const { return duration_ != nullptr || observer_; }

  void Finish(RedisCommandRecord& record,
              const absl::StatusOr<RedisReply>& reply) const {
    if (!reply.ok()) {
      record.outcome = "unavailable";
      record.error = std::string(reply.status().message());
    } else if (reply->is_error()) {
      record.outcome = "error_reply";
      record.error = reply->str.substr(0, 128);
    } else {
      record.outcome = "ok";
    }
    if (duration_ != nullptr) {
      // clang-format off
      static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
          0.01, 0.025, 0.05, 0.1, 0.25, 0.5};
      // clang-format on
      duration_
          ->Add({{"command", record.command}, {"outcome", record.outcome}},
                *buckets)
          .Observe(absl::ToDoubleSeconds(record.latency));
    }
    if (observer_) observer_(record);
  }

 private:
  prometheus::Family<prometheus::Histogram>* const duration_;
  const RedisCommandObserver observer_;
};

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(
    EventLoop* loop, RedisClientOptions options) {
  if (loop == nullptr) return absl::InvalidArgumentError("no event loop");
  auto target = ParseRedisUrl(options.url);
  if (!target.ok()) return target.status();
  if (!options.password.empty()) {
    for (RedisEndpoint& e : target->endpoints) e.password = options.password;
  }
  for (absl::Duration d : {options.connect_timeout, options.command_timeout,
                           options.initial_backoff, options.max_backoff}) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "Redis timeouts and backoffs must be positive");
    }
  }
  auto instrumentation = std::make_shared<const Instrumentation>(
      options.metrics, std::move(options.observer));
  auto impl =
      std::make_shared<Impl>(loop, *std::move(target), std::move(options));
  if (loop->InLoopThread()) {
    impl->Start();
  } else {
    loop->Post([impl] { impl->Start(); });
  }
  return std::unique_ptr<RedisClient>(
      new RedisClient(loop, std::move(impl), std::move(instrumentation)));
}

RedisClient::~RedisClient() {
  if (loop_->InLoopThread()) {
    // Maybe inside one of hiredis's callbacks, where its context must not be
    // freed: shut down on the next turn; the closure keeps Impl alive.
    loop_->Post([impl = impl_] { impl->Shutdown(); });
    return;
  }
  auto done = std::make_shared<absl::Notification>();
  loop_->Post([impl = impl_, done] {
    impl->Shutdown();
    done->Notify();
  });
  // Bounded, so a loop stopped too early cannot hang the process; ~Impl then
  // cleans up on whichever thread drops the last reference.
  done->WaitForNotificationWithTimeout(absl::Seconds(10));
}

RedisClient::Callback RedisClient::Instrument(
    const std::vector<std::string>& args, Callback done) const {
  if (instrumentation_->active() && !args.empty()) {
    done = [instrumentation = instrumentation_, start = absl::Now(),
            command = absl::AsciiStrToLower(args[0]),
            done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
      RedisCommandRecord record;
      record.command = std::move(command);
      record.latency = absl::Now() - start;
      instrumentation->Finish(record, reply);
      std::move(done)(std::move(reply));
    };
  }
  return BindTrace(std::move(done));
}

void RedisClient::Post(absl::AnyInvocable<void()> fn) {
  if (loop_->InLoopThread()) {
    fn();
  } else {
    loop_->Post(std::move(fn));
  }
}

void RedisClient::Command(std::vector<std::string> args, Callback done) {
  done = Instrument(args, std::move(done));
  std::optional<std::string> key = RoutingKey(args);
  Post([impl = impl_, key = std::move(key), args = std::move(args),
        done = std::move(done)]() mutable {
    impl->Send(std::move(key), std::move(args), std::move(done));
  });
}

void RedisClient::CommandForKey(std::string key, std::vector<std::string> args,
                                Callback done) {
  done = Instrument(args, std::move(done));
  Post([impl = impl_, key = std::move(key), args = std::move(args),
        done = std::move(done)]() mutable {
    impl->Send(std::move(key), std::move(args), std::move(done));
  });
}

void RedisClient::PrimarySlots(
    absl::AnyInvocable<void(std::vector<int>) &&> done) {
  Post([impl = impl_, done = std::move(done)]() mutable {
    std::move(done)(impl->PrimarySlots());
  });
}

void RedisClient::CommandThenWait(
    std::vector<std::string> args, ReplicationWait wait,
    absl::AnyInvocable<bool(const RedisReply&) const> wait_if, Callback done) {
  // Timed as one command, WAIT included.
  done = Instrument(args, std::move(done));
  Post([impl = impl_, args = std::move(args), wait,
        wait_if = std::move(wait_if), done = std::move(done)]() mutable {
    impl->SendThenWait(std::move(args), wait, std::move(wait_if),
                       std::move(done));
  });
}

bool RedisClient::Healthy() const { return impl_->healthy(); }

}  // namespace payorch::cache
