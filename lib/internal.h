/* Private declarations shared by the files of libasyncuv.  Nothing here is
 * exported: the build uses -fvisibility=hidden and a version script. */
#ifndef ASYNCUV_INTERNAL_H
#define ASYNCUV_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "asyncuv.h"
#include "copy.h"

#define AUV__INTERNAL __attribute__((visibility("hidden")))

enum {
  AUV__TIMER_IDLE = 0,
  AUV__TIMER_HEAP,   /* waiting in the loop's heap */
  AUV__TIMER_DUE     /* expired, on the due list for this iteration */
};

struct auv_timer_s {
  auv_loop_t* loop;
  auv_timer_cb cb;
  void* data;
  uint64_t deadline;
  uint64_t seq;               /* start order: breaks ties between deadlines */
  size_t heap_index;
  auv_timer_t* due_prev;
  auv_timer_t* due_next;
  int state;
};

typedef struct {
  auv_call_cb cb;
  void* arg;
} auv__call_t;

/* Readiness found by a poll and not yet handled: the loop's I/O queue holds
 * these, in the order the poll found them.  I/O that a poll finds runs after
 * the calls queued before that poll, as in asyncio, whose selector appends a
 * poll's events to the ready queue behind them.  libuv runs poll callbacks
 * inside uv_run(): they only record the events here, and the loop calls run
 * in its I/O step, after those calls (loop.c). */
typedef struct auv__rec_s auv__rec_t;
struct auv__rec_s {
  void (*run)(auv__rec_t* rec, int status, int events);
  int status;
  int events;              /* recorded, not yet run */
  size_t slot;             /* 1 + index in the loop's I/O queue, or 0 */
};

/* An engine handle's libuv poll, whose I/O is recorded (auv__rec_t). */
typedef struct {
  uv_poll_t poll;          /* first: the libuv callback finds the rest */
  uv_poll_cb cb;           /* run in the loop's I/O step */
  auv__rec_t rec;
} auv__io_t;

/* A FIFO ring of calls; capacity is a power of two. */
typedef struct {
  auv__call_t* items;
  size_t head;
  size_t count;
  size_t mask;
} auv__ring_t;

struct auv_loop_s {
  uv_loop_t uv;
  void* data;

  auv__ring_t ready;

  /* Engine handles whose poll found I/O, in the order it found it; run
   * after the ready queue's calls of the iteration (io_head onwards). */
  auv__rec_t** io_queue;
  size_t io_head;
  size_t io_count;
  size_t io_cap;

  /* Timers: a binary min-heap on (deadline, seq) over one uv_timer_t. */
  auv_timer_t** heap;
  size_t heap_count;
  size_t heap_cap;
  uint64_t timer_seq;
  auv_timer_t* due_head;
  auv_timer_t* due_tail;
  uv_timer_t uv_timer;
  uint64_t armed_deadline;

  /* Calls from other threads, moved to the ready queue by the async cb. */
  uv_async_t async;
  pthread_mutex_t ts_lock;
  auv__call_t* ts_items;
  size_t ts_count;
  size_t ts_cap;
  unsigned int keepalive;

  /* The watcher set (watch.c): an epoll set of the loop's own, read
   * during the poll by one libuv poll of its fd. */
  uv_poll_t ws_poll;
  int ws_fd;
  struct auv__ws_slot_s* ws_slots;  /* started watchers, by slot */
  uint32_t ws_nslots;
  uint32_t ws_free;           /* first free slot, or ws_nslots */
  uint32_t ws_count;          /* started watchers */
  uint64_t ws_slot_sum;       /* their slots' sum: the slot, when one */
  size_t ws_alive;            /* watchers not yet freed */

  size_t work_pending;
  size_t dns_pending;         /* getaddrinfo/getnameinfo requests */

  /* Block hooks (an embedder's lock, Python's GIL). */
  uv_prepare_t prepare;
  uv_check_t check;
  auv_block_cb before_block;
  auv_block_cb after_block;
  void* block_arg;
  int blocked;
  int may_block;

  int running;
  int stop_flag;
  int interrupted;
};

/* Leave the blocked state (retake the embedder's lock) before running any
 * callback or touching loop state from a libuv callback. */
static inline void auv__loop_unblock(auv_loop_t* loop) {
  if (loop->blocked) {
    loop->blocked = 0;
    loop->after_block(loop, loop->block_arg);
  }
}

AUV__INTERNAL int auv__io_init(auv_loop_t* loop, auv__io_t* io, int fd);
AUV__INTERNAL int auv__io_start(auv__io_t* io, int events, uv_poll_cb cb);
AUV__INTERNAL int auv__io_stop(auv__io_t* io);
AUV__INTERNAL int auv__io_update(auv__io_t* io, int* current, int events,
                                uv_poll_cb cb);
AUV__INTERNAL void auv__io_close(auv__io_t* io, uv_close_cb close_cb);
AUV__INTERNAL void auv__io_forget(auv__io_t* io);
AUV__INTERNAL int auv__rec_push(auv_loop_t* loop, auv__rec_t* rec, int status,
                                int events);
AUV__INTERNAL void auv__rec_forget(auv_loop_t* loop, auv__rec_t* rec);

AUV__INTERNAL int auv__watch_set_open(auv_loop_t* loop);
AUV__INTERNAL void auv__watch_set_close(auv_loop_t* loop);

/* auv_stream_sendfile(): the request rides the stream's writability. */
AUV__INTERNAL int auv__stream_sendfile_begin(auv_stream_t* stream,
                                             auv_sendfile_t* req,
                                             auv_stream_cb writable_cb);
AUV__INTERNAL int auv__stream_sendfile_wait(auv_stream_t* stream,
                                            auv_stream_cb writable_cb);
AUV__INTERNAL void auv__stream_sendfile_end(auv_stream_t* stream);
AUV__INTERNAL auv_sendfile_t* auv__stream_sendfile_req(const auv_stream_t* stream);
AUV__INTERNAL int auv__stream_is_socket(const auv_stream_t* stream);
AUV__INTERNAL void auv__sendfile_stream_closed(auv_sendfile_t* req);

AUV__INTERNAL void auv__timers_collect(auv_loop_t* loop);
AUV__INTERNAL void auv__timers_fire(auv_loop_t* loop);
AUV__INTERNAL void auv__timers_arm(auv_loop_t* loop);

#endif /* ASYNCUV_INTERNAL_H */
