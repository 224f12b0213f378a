#ifndef PAYORCH_CACHE_HIREDIS_HANDLES_H_
#define PAYORCH_CACHE_HIREDIS_HANDLES_H_

// RAII owners for the C handles payorch's Redis code holds: libevent events
// (timers), hiredis's blocking contexts and replies. The asynchronous context
// (redisAsyncContext) is not among them: hiredis frees it itself after a
// disconnect, so RedisNode tracks it by hand (cache/redis_node.h).

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <memory>

namespace payorch::cache {

struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};
using EventPtr = std::unique_ptr<event, EventDeleter>;

struct RedisContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextDeleter>;

struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_HIREDIS_HANDLES_H_
