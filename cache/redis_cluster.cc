#include "cache/redis_cluster.h"

#include <event2/event.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace payorch::cache {
namespace {

// Bounds on what one command may go through before its caller hears back.
constexpr int kMaxRedirects = 5;  // MOVED/ASK hops (a slot moves once)
constexpr int kMaxRetries = 3;    // TRYAGAIN/CLUSTERDOWN, with backoff
constexpr absl::Duration kRetryBase = absl::Milliseconds(20);
constexpr absl::Duration kRetryCap = absl::Milliseconds(200);
// Refreshes triggered by errors are at most this frequent.
constexpr absl::Duration kMinRefreshGap = absl::Milliseconds(100);

uint16_t Crc16Xmodem(absl::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

bool IsError(const RedisReply& reply, absl::string_view code) {
  return reply.is_error() && absl::StartsWith(reply.str, code) &&
         (reply.str.size() == code.size() || reply.str[code.size()] == ' ');
}

}  // namespace

int KeySlot(absl::string_view key) {
  if (size_t open = key.find('{'); open != absl::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16Xmodem(key) & (kClusterSlots - 1);
}

const std::string& SlotTag(int slot) {
  static const std::vector<std::string>* const tags = [] {
    auto* out = new std::vector<std::string>(kClusterSlots);
    int missing = kClusterSlots;
    for (uint64_t n = 0; missing > 0; ++n) {
      std::string tag = std::to_string(n);
      std::string& place = (*out)[KeySlot(tag)];
      if (!place.empty()) continue;
      place = std::move(tag);
      --missing;
    }
    return out;
  }();
  return (*tags)[slot & (kClusterSlots - 1)];
}

std::optional<std::string> RoutingKey(const std::vector<std::string>& args) {
  if (args.size() < 2) return std::nullopt;
  const std::string command = absl::AsciiStrToUpper(args[0]);
  for (absl::string_view scripted :
       {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}) {
    if (command != scripted) continue;
    int numkeys = 0;
    if (args.size() < 4 || !absl::SimpleAtoi(args[2], &numkeys) ||
        numkeys < 1) {
      return std::nullopt;
    }
    return args[3];
  }
  for (absl::string_view keyless :
       {"PING", "WAIT", "SCRIPT", "CLUSTER", "INFO", "ROLE", "TIME", "ECHO",
        "CONFIG", "CLIENT", "DBSIZE", "FUNCTION", "COMMAND", "ASKING"}) {
    if (command == keyless) return std::nullopt;
  }
  return args[1];
}

absl::StatusOr<std::vector<SlotRange>> ParseClusterSlots(
    const RedisReply& reply, const std::string& asked_host) {
  using Type = RedisReply::Type;
  const auto bad = [] {
    return absl::InternalError("unexpected CLUSTER SLOTS reply");
  };
  if (reply.type != Type::kArray) return bad();
  std::vector<SlotRange> ranges;
  for (const RedisReply& entry : reply.elements) {
    const auto& e = entry.elements;
    if (entry.type != Type::kArray || e.size() < 3 ||
        e[0].type != Type::kInteger || e[1].type != Type::kInteger ||
        e[2].type != Type::kArray || e[2].elements.size() < 2 ||
        e[2].elements[1].type != Type::kInteger) {
      return bad();
    }
    SlotRange range;
    range.first = static_cast<int>(e[0].integer);
    range.last = static_cast<int>(e[1].integer);
    if (range.first < 0 || range.last >= kClusterSlots ||
        range.first > range.last) {
      return bad();
    }
    std::string host = e[2].elements[0].str;
    if (host.empty() || host == "?") host = asked_host;
    range.primary = absl::StrCat(host, ":", e[2].elements[1].integer);
    range.replicas = static_cast<int>(e.size()) - 3;
    ranges.push_back(std::move(range));
  }
  return ranges;
}

std::optional<Redirect> ParseRedirect(const RedisReply& reply) {
  Redirect redirect;
  if (IsError(reply, "ASK")) {
    redirect.ask = true;
  } else if (!IsError(reply, "MOVED")) {
    return std::nullopt;
  }
  std::vector<absl::string_view> parts =
      absl::StrSplit(reply.str, ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &redirect.slot) ||
      redirect.slot < 0 || redirect.slot >= kClusterSlots ||
      parts[2].rfind(':') == absl::string_view::npos) {
    return std::nullopt;
  }
  redirect.address = std::string(parts[2]);
  if (absl::StartsWith(redirect.address, ":")) return std::nullopt;
  return redirect;
}

// One command on its way: kept until its final answer so a redirect or a
// TRYAGAIN can send it again (each of those means it did not run).
struct RedisClient::Impl::Request {
  int slot = -1;  // -1: any primary
  std::vector<std::string> args;
  Callback done;
  int redirects = 0;
  int retries = 0;
  std::string ask_address;  // set by ASK, for one attempt
  // CommandThenWait
  std::optional<ReplicationWait> wait;
  absl::AnyInvocable<bool(const RedisReply&) const> wait_if;
};

RedisClient::Impl::Impl(EventLoop* loop, RedisTarget target,
                        RedisClientOptions options)
    : loop_(loop),
      target_(std::move(target)),
      options_(std::move(options)),
      rng_(std::random_device{}()) {
  if (!target_.cluster) {
    // Created here (started on the loop thread), so healthy() can read it
    // from any thread without a race.
    const RedisEndpoint& e = target_.endpoints[0];
    auto node = std::make_unique<RedisNode>(loop_, e, options_);
    single_ = node.get();
    nodes_.emplace(absl::StrCat(e.host, ":", e.port), std::move(node));
  }
}

RedisClient::Impl::~Impl() { Shutdown(); }

void RedisClient::Impl::Start() {
  if (!target_.cluster) {
    single_->Start();
    return;
  }
  slots_.assign(kClusterSlots, nullptr);
  refresh_timer_.reset(evtimer_new(loop_->base(), &Impl::OnRefreshTimer, this));
  for (const RedisEndpoint& seed : target_.endpoints) {
    NodeFor(absl::StrCat(seed.host, ":", seed.port));
  }
  Refresh();
}

void RedisClient::Impl::Shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  map_healthy_.store(false, std::memory_order_release);
  refresh_timer_.reset();
  // Pending commands fail now (their callbacks see shutting_down_).
  // The nodes themselves live as long as this router (healthy() may read
  // single_ from another thread).
  for (auto& [address, node] : nodes_) node->Shutdown();
  std::fill(slots_.begin(), slots_.end(), nullptr);
}

bool RedisClient::Impl::healthy() const {
  if (!target_.cluster) {
    // single_ is set once, on the loop thread, before any caller can see
    // the client as started; reading the node's atomic flag is safe.
    const RedisNode* node = single_;
    return node != nullptr && node->healthy();
  }
  return map_healthy_.load(std::memory_order_acquire);
}

void RedisClient::Impl::Send(std::optional<std::string> key,
                             std::vector<std::string> args, Callback done) {
  auto request = std::make_unique<Request>();
  if (target_.cluster && key.has_value()) request->slot = KeySlot(*key);
  request->args = std::move(args);
  request->done = std::move(done);
  Dispatch(std::move(request));
}

void RedisClient::Impl::SendThenWait(
    std::vector<std::string> args, ReplicationWait wait,
    absl::AnyInvocable<bool(const RedisReply&) const> wait_if, Callback done) {
  auto request = std::make_unique<Request>();
  if (std::optional<std::string> key = RoutingKey(args);
      target_.cluster && key.has_value()) {
    request->slot = KeySlot(*key);
  }
  request->args = std::move(args);
  request->done = std::move(done);
  request->wait = wait;
  request->wait_if = std::move(wait_if);
  Dispatch(std::move(request));
}

void RedisClient::Impl::Dispatch(std::unique_ptr<Request> request) {
  if (shutting_down_) {
    std::move(request->done)(
        absl::UnavailableError("Redis client is shut down"));
    return;
  }
  RedisNode* node = single_;
  if (target_.cluster) {
    if (!request->ask_address.empty()) {
      node = NodeFor(request->ask_address);
    } else if (request->slot >= 0) {
      node = slots_[request->slot];
    } else {
      node = AnyNode();
    }
  }
  if (node == nullptr) {
    RefreshSoon();
    std::move(request->done)(absl::UnavailableError(
        absl::StrCat("Redis Cluster: no primary known for slot ", request->slot,
                     map_loaded_ ? " (the slot is not served)"
                                 : " (slot map not loaded yet)")));
    return;
  }
  const bool ask = !request->ask_address.empty();
  request->ask_address.clear();
  if (ask) node->Send({"ASKING"}, [](absl::StatusOr<RedisReply>) {});
  // A single server never redirects: no copy to keep for a retry.
  std::vector<std::string> args =
      target_.cluster ? request->args : std::move(request->args);
  node->Send(std::move(args),
             [self = shared_from_this(), request = std::move(request),
              node](absl::StatusOr<RedisReply> reply) mutable {
               self->OnReply(std::move(request), node, std::move(reply));
             });
}

void RedisClient::Impl::OnReply(std::unique_ptr<Request> request,
                                RedisNode* node,
                                absl::StatusOr<RedisReply> reply) {
  if (!reply.ok()) {
    RefreshSoon();  // maybe a failover: the map will tell
    std::move(request->done)(std::move(reply).status());
    return;
  }
  if (target_.cluster && reply->is_error() && !shutting_down_) {
    if (std::optional<Redirect> redirect = ParseRedirect(*reply);
        redirect.has_value() && request->redirects < kMaxRedirects) {
      ++request->redirects;
      if (redirect->ask) {
        request->ask_address = redirect->address;
      } else {
        slots_[redirect->slot] = NodeFor(redirect->address);
        RefreshSoon();  // more slots probably moved with this one
      }
      Dispatch(std::move(request));
      return;
    }
    const bool clusterdown = IsError(*reply, "CLUSTERDOWN");
    if ((clusterdown || IsError(*reply, "TRYAGAIN")) &&
        request->retries < kMaxRetries) {
      if (clusterdown) RefreshSoon();
      // Full jitter: uniform in [0, min(cap, base * 2^n)].
      absl::Duration ceiling =
          std::min(kRetryCap, kRetryBase * (1 << request->retries));
      std::uniform_int_distribution<int64_t> jitter(
          0, absl::ToInt64Microseconds(ceiling));
      ++request->retries;
      Retry(std::move(request), absl::Microseconds(jitter(rng_)));
      return;
    }
  }
  if (request->wait.has_value() && !reply->is_error() &&
      request->wait_if(*reply)) {
    Wait(node, *request->wait, *std::move(reply), std::move(request->done));
    return;
  }
  std::move(request->done)(std::move(reply));
}

void RedisClient::Impl::Retry(std::unique_ptr<Request> request,
                              absl::Duration delay) {
  loop_->RunAfter(delay, [self = shared_from_this(),
                          request = std::move(request)]() mutable {
    self->Dispatch(std::move(request));
  });
}

// WAIT on the connection that ran the command: Redis counts the replicas
// that acknowledged this connection's latest write, which includes it.
void RedisClient::Impl::Wait(RedisNode* node, ReplicationWait wait,
                             RedisReply reply, Callback done) {
  int needed = wait.replicas;
  if (needed < 0) needed = node->replicas() > 0 ? 1 : 0;
  if (needed == 0) {
    std::move(done)(std::move(reply));
    return;
  }
  const int64_t ms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(wait.timeout));
  node->Send({"WAIT", std::to_string(needed), std::to_string(ms)},
             [needed, ms, reply = std::move(reply), done = std::move(done)](
                 absl::StatusOr<RedisReply> acked) mutable {
               if (acked.ok() && acked->type == RedisReply::Type::kInteger &&
                   acked->integer >= needed) {
                 std::move(done)(std::move(reply));
                 return;
               }
               std::move(done)(absl::UnavailableError(absl::StrCat(
                   "write not confirmed by ", needed, " replica(s) within ", ms,
                   " ms (",
                   !acked.ok() ? std::string(acked.status().message())
                   : acked->type == RedisReply::Type::kInteger
                       ? absl::StrCat(acked->integer, " acknowledged")
                       : acked->str,
                   "); it was applied on the primary only")));
             });
}

RedisNode* RedisClient::Impl::NodeFor(const std::string& address) {
  if (auto it = nodes_.find(address); it != nodes_.end()) {
    return it->second.get();
  }
  const size_t colon = address.rfind(':');
  RedisEndpoint endpoint = target_.endpoints[0];  // the credentials
  endpoint.host = address.substr(0, colon);
  if (absl::StartsWith(endpoint.host, "[")) {
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), &endpoint.port)) {
    endpoint.port = 6379;
  }
  auto node = std::make_unique<RedisNode>(loop_, std::move(endpoint), options_);
  RedisNode* raw = node.get();
  nodes_.emplace(address, std::move(node));
  raw->Start();
  return raw;
}

// For keyless commands: a connected primary, else any node.
RedisNode* RedisClient::Impl::AnyNode() {
  RedisNode* fallback = nullptr;
  for (RedisNode* node : slots_) {
    if (node != nullptr && node->healthy()) return node;
    if (fallback == nullptr) fallback = node;
  }
  if (fallback == nullptr && !nodes_.empty()) {
    fallback = nodes_.begin()->second.get();
  }
  return fallback;
}

void RedisClient::Impl::RefreshSoon() {
  if (!target_.cluster || shutting_down_ || refresh_timer_ == nullptr) return;
  const absl::Duration wait = std::max(
      absl::ZeroDuration(), last_refresh_ + kMinRefreshGap - absl::Now());
  timeval tv = absl::ToTimeval(wait);
  evtimer_add(refresh_timer_.get(), &tv);
}

void RedisClient::Impl::OnRefreshTimer(int, short, void* arg) {
  static_cast<Impl*>(arg)->Refresh();
}

// Asks a connected node (else the next seed) for CLUSTER SLOTS. At most one
// refresh in flight; the periodic timer is re-armed after each.
void RedisClient::Impl::Refresh() {
  if (shutting_down_ || refreshing_) return;
  RedisNode* asked = nullptr;
  for (auto& [address, node] : nodes_) {
    if (node->healthy()) {
      asked = node.get();
      break;
    }
  }
  if (asked == nullptr) {
    const RedisEndpoint& seed =
        target_.endpoints[next_seed_++ % target_.endpoints.size()];
    asked = NodeFor(absl::StrCat(seed.host, ":", seed.port));
  }
  refreshing_ = true;
  last_refresh_ = absl::Now();
  const std::string host =
      asked->address().substr(0, asked->address().rfind(':'));
  asked->Send({"CLUSTER", "SLOTS"}, [self = shared_from_this(),
                                     host](absl::StatusOr<RedisReply> reply) {
    if (self->shutting_down_) return;
    self->refreshing_ = false;
    absl::StatusOr<std::vector<SlotRange>> ranges =
        reply.ok() ? ParseClusterSlots(*reply, host)
                   : absl::StatusOr<std::vector<SlotRange>>(reply.status());
    if (ranges.ok() && !ranges->empty()) self->ApplySlots(*ranges);
    self->UpdateHealth();
    const bool failed = !ranges.ok() || ranges->empty();
    const absl::Duration next =
        failed ? kMinRefreshGap
               : (self->options_.ping_interval > absl::ZeroDuration()
                      ? self->options_.ping_interval
                      : absl::Seconds(1));
    timeval tv = absl::ToTimeval(next);
    evtimer_add(self->refresh_timer_.get(), &tv);
  });
}

void RedisClient::Impl::ApplySlots(const std::vector<SlotRange>& ranges) {
  std::fill(slots_.begin(), slots_.end(), nullptr);
  for (const SlotRange& range : ranges) {
    RedisNode* node = NodeFor(range.primary);
    std::fill(slots_.begin() + range.first, slots_.begin() + range.last + 1,
              node);
  }
  map_loaded_ = true;
}

std::vector<int> RedisClient::Impl::PrimarySlots() const {
  if (!target_.cluster) return {0};
  std::vector<int> out;
  std::vector<const RedisNode*> seen;
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    const RedisNode* node = slots_[slot];
    if (node == nullptr ||
        std::find(seen.begin(), seen.end(), node) != seen.end()) {
      continue;
    }
    seen.push_back(node);
    out.push_back(slot);
  }
  return out;
}

void RedisClient::Impl::UpdateHealth() {
  bool any = false;
  if (map_loaded_) {
    for (RedisNode* node : slots_) {
      if (node != nullptr && node->healthy()) {
        any = true;
        break;
      }
    }
  }
  map_healthy_.store(any, std::memory_order_release);
}

}  // namespace payorch::cache
