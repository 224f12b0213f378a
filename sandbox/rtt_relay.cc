// rtt-relay: emulates a network round-trip time on loopback, where the
// kernel's netem is not available. A TCP relay in front of one target: every
// chunk read from either side is written to the other side RTT/2 later, in
// order, and a new connection's first bytes wait one more RTT, as the TCP
// handshake would make them. So a fresh connection costs a round trip, a TLS
// handshake its round trips, and each request/response one more. Closes
// travel like data: a FIN after RTT/2 (once the data before it is written),
// an error or reset as a reset. Loopback addresses only. See
// sandbox/README.md.

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "loopback HOST:PORT to accept on (port 0 picks a free one, printed "
          "on stdout as 'listening HOST:PORT')");
ABSL_FLAG(std::string, target, "", "loopback HOST:PORT to relay to");
ABSL_FLAG(absl::Duration, rtt, absl::Milliseconds(25),
          "emulated round-trip time (each direction gets half)");

namespace {

class Link;

// One direction of a link: what `from` sends is written to `to` later.
struct Pipe {
  Link* link = nullptr;
  bufferevent* from = nullptr;
  bufferevent* to = nullptr;
  std::deque<std::pair<absl::Time, std::string>> chunks;  // due, bytes
  absl::Time not_before = absl::InfinitePast();
  event* timer = nullptr;
  // `from` ended: forward a FIN (or a reset) at close_at.
  bool closing = false;
  bool reset = false;
  absl::Time close_at;
};

// A client connection and its connection to the target.
class Link {
 public:
  Link(event_base* base, evutil_socket_t client_fd, absl::Duration rtt);
  ~Link();
  bool Connect(const sockaddr_in& target);

 private:
  static void OnRead(bufferevent* bev, void* arg);
  static void OnEvent(bufferevent* bev, short what, void* arg);
  static void OnTimer(evutil_socket_t, short, void* arg);
  static void OnDrained(bufferevent* bev, void* arg);
  void Arm(Pipe* p);
  void Deliver(Pipe* p);
  // Ends the link at `p->to`: a reset now, or a FIN once written.
  void Close(Pipe* p);

  absl::Duration half_;
  bufferevent* client_;
  bufferevent* upstream_;
  Pipe up_, down_;  // client -> target, target -> client
};

void NoDelay(evutil_socket_t fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

Link::Link(event_base* base, evutil_socket_t client_fd, absl::Duration rtt)
    : half_(rtt / 2) {
  NoDelay(client_fd);
  client_ = bufferevent_socket_new(base, client_fd, BEV_OPT_CLOSE_ON_FREE);
  upstream_ = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  up_.from = down_.to = client_;
  up_.to = down_.from = upstream_;
  // The handshake's round trip: the client's first bytes could not have
  // left before it.
  up_.not_before = absl::Now() + rtt + half_;
  for (Pipe* p : {&up_, &down_}) {
    p->link = this;
    p->timer = evtimer_new(base, &Link::OnTimer, p);
    bufferevent_setcb(p->from, &Link::OnRead, nullptr, &Link::OnEvent, p);
    bufferevent_enable(p->from, EV_READ | EV_WRITE);
  }
}

Link::~Link() {
  for (Pipe* p : {&up_, &down_}) event_free(p->timer);
  bufferevent_free(client_);
  bufferevent_free(upstream_);
}

bool Link::Connect(const sockaddr_in& target) {
  sockaddr_in addr = target;
  if (bufferevent_socket_connect(upstream_, reinterpret_cast<sockaddr*>(&addr),
                                 sizeof(addr)) != 0) {
    return false;
  }
  NoDelay(bufferevent_getfd(upstream_));
  return true;
}

void Link::OnRead(bufferevent* bev, void* arg) {
  auto* p = static_cast<Pipe*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  std::string data(evbuffer_get_length(in), '\0');
  evbuffer_remove(in, data.data(), data.size());
  absl::Time due = std::max(absl::Now() + p->link->half_, p->not_before);
  p->chunks.emplace_back(due, std::move(data));
  p->link->Arm(p);
}

void Link::OnEvent(bufferevent* bev, short what, void* arg) {
  auto* p = static_cast<Pipe*>(arg);
  if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0 || p->closing) return;
  bufferevent_disable(bev, EV_READ);
  p->closing = true;
  p->reset = (what & BEV_EVENT_ERROR) != 0;
  p->close_at = std::max(absl::Now() + p->link->half_, p->not_before);
  p->link->Arm(p);
}

void Link::Arm(Pipe* p) {
  absl::Time next = p->chunks.empty() ? p->close_at : p->chunks.front().first;
  timeval tv =
      absl::ToTimeval(std::max(next - absl::Now(), absl::ZeroDuration()));
  evtimer_add(p->timer, &tv);
}

void Link::OnTimer(evutil_socket_t, short, void* arg) {
  auto* p = static_cast<Pipe*>(arg);
  p->link->Deliver(p);
}

void Link::Deliver(Pipe* p) {
  absl::Time now = absl::Now();
  while (!p->chunks.empty() && p->chunks.front().first <= now) {
    const std::string& data = p->chunks.front().second;
    bufferevent_write(p->to, data.data(), data.size());
    p->chunks.pop_front();
  }
  if (!p->chunks.empty() || (p->closing && p->close_at > now)) {
    Arm(p);
  } else if (p->closing) {
    Close(p);
  }
}

void Link::Close(Pipe* p) {
  evutil_socket_t fd = bufferevent_getfd(p->to);
  if (p->reset && fd >= 0) {
    linger lg{1, 0};  // RST instead of FIN
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  if (p->reset || evbuffer_get_length(bufferevent_get_output(p->to)) == 0) {
    delete this;
    return;
  }
  // Write what is queued, then close (OnDrained).
  bufferevent_setcb(p->to, nullptr, &Link::OnDrained, nullptr, this);
  bufferevent_disable(p->to, EV_READ);
}

void Link::OnDrained(bufferevent*, void* arg) {
  delete static_cast<Link*>(arg);
}

// "127.x.y.z:port" into an address; false if malformed or not loopback.
bool ParseLoopback(const std::string& text, sockaddr_in* out) {
  size_t colon = text.rfind(':');
  int port = 0;
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 0 ||
      port > 65535 ||
      inet_pton(AF_INET, text.substr(0, colon).c_str(), &out->sin_addr) != 1) {
    return false;
  }
  out->sin_port = htons(static_cast<uint16_t>(port));
  return (ntohl(out->sin_addr.s_addr) >> 24) == 127;
}

struct Relay {
  event_base* base;
  sockaddr_in target;
  absl::Duration rtt;
};

void OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* relay = static_cast<Relay*>(arg);
  auto* link = new Link(relay->base, fd, relay->rtt);
  if (!link->Connect(relay->target)) delete link;
}

void OnSignal(evutil_socket_t, short, void* arg) {
  event_base_loopexit(static_cast<event_base*>(arg), nullptr);
}

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "rtt-relay: %s\n", msg.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) Die(absl::StrCat("unexpected argument ", rest[1]));
  Relay relay{nullptr, {}, absl::GetFlag(FLAGS_rtt)};
  sockaddr_in listen_addr{};
  if (!ParseLoopback(absl::GetFlag(FLAGS_listen), &listen_addr)) {
    Die("--listen must be a loopback HOST:PORT");
  }
  if (!ParseLoopback(absl::GetFlag(FLAGS_target), &relay.target) ||
      relay.target.sin_port == 0) {
    Die("--target must be a loopback HOST:PORT");
  }
  if (relay.rtt < absl::ZeroDuration()) Die("--rtt must not be negative");
  signal(SIGPIPE, SIG_IGN);
  relay.base = event_base_new();
  evconnlistener* listener = evconnlistener_new_bind(
      relay.base, &OnAccept, &relay,
      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
      reinterpret_cast<sockaddr*>(&listen_addr), sizeof(listen_addr));
  if (listener == nullptr)
    Die(absl::StrCat("cannot listen: ", strerror(errno)));
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(evconnlistener_get_fd(listener),
              reinterpret_cast<sockaddr*>(&bound), &len);
  char host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &bound.sin_addr, host, sizeof(host));
  event* term = evsignal_new(relay.base, SIGTERM, &OnSignal, relay.base);
  event* intr = evsignal_new(relay.base, SIGINT, &OnSignal, relay.base);
  evsignal_add(term, nullptr);
  evsignal_add(intr, nullptr);
  std::printf("listening %s:%d\n", host, ntohs(bound.sin_port));
  std::fflush(stdout);
  event_base_dispatch(relay.base);
  // Links still open are left to the kernel to close at exit.
  event_free(term);
  event_free(intr);
  evconnlistener_free(listener);
  return 0;
}
