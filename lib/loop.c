/* The loop: its life cycle, one iteration, the ready queue and calls from
 * other threads.
 *
 * One iteration follows asyncio's _run_once():
 *   1. poll for I/O with libuv (without blocking when calls are queued or a
 *      stop is pending); the engine handles' poll callbacks only record what
 *      they found (auv__io_t);
 *   2. take the timers whose deadline has passed off the heap (the due list);
 *   3. run the calls queued before this point, in FIFO order; what they
 *      queue waits for the next iteration;
 *   4. run the I/O callbacks recorded in step 1, in the order the poll
 *      found them; what they queue waits for the next iteration too;
 *   5. fire the due timers in (deadline, start order).
 * asyncio's selector loop does the same: the events of a poll join its
 * ready queue behind the calls already there, then the due timers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define AUV__RING_MIN 64


static int auv__ring_grow(auv__ring_t* ring) {
  size_t cap;
  size_t first;
  auv__call_t* items;

  cap = ring->items == NULL ? AUV__RING_MIN : (ring->mask + 1) * 2;
  items = malloc(cap * sizeof(*items));
  if (items == NULL)
    return UV_ENOMEM;

  if (ring->count > 0) {
    /* Unwrap: the oldest item goes to index 0. */
    first = ring->mask + 1 - ring->head;
    if (first > ring->count)
      first = ring->count;
    memcpy(items, ring->items + ring->head, first * sizeof(*items));
    memcpy(items + first, ring->items, (ring->count - first) * sizeof(*items));
  }

  free(ring->items);
  ring->items = items;
  ring->head = 0;
  ring->mask = cap - 1;
  return 0;
}


static inline int auv__ring_push(auv__ring_t* ring, auv_call_cb cb, void* arg) {
  auv__call_t* item;
  int err;

  if (ring->items == NULL || ring->count > ring->mask) {
    err = auv__ring_grow(ring);
    if (err != 0)
      return err;
  }

  item = &ring->items[(ring->head + ring->count) & ring->mask];
  item->cb = cb;
  item->arg = arg;
  ring->count++;
  return 0;
}


static int auv__ring_reserve(auv__ring_t* ring, size_t extra) {
  int err;

  while (ring->items == NULL || ring->count + extra > ring->mask + 1) {
    err = auv__ring_grow(ring);
    if (err != 0)
      return err;
  }
  return 0;
}


static void auv__async_cb(uv_async_t* handle) {
  auv_loop_t* loop;
  size_t i;

  loop = handle->data;
  auv__loop_unblock(loop);

  pthread_mutex_lock(&loop->ts_lock);
  /* Out of memory: the calls stay queued here until the next wake-up. */
  if (auv__ring_reserve(&loop->ready, loop->ts_count) == 0) {
    for (i = 0; i < loop->ts_count; i++)
      auv__ring_push(&loop->ready, loop->ts_items[i].cb, loop->ts_items[i].arg);
    loop->ts_count = 0;
  }
  pthread_mutex_unlock(&loop->ts_lock);
}


static void auv__prepare_cb(uv_prepare_t* handle) {
  auv_loop_t* loop;

  loop = handle->data;
  /* The poll that follows may block.  (uv_backend_timeout() cannot tell:
   * it answers 0 whenever watchers await registration, although the poll
   * then blocks with the real timeout.)  We only get here with UV_RUN_ONCE
   * and an empty ready queue, when blocking is the likely outcome. */
  if (loop->may_block && !loop->blocked) {
    loop->blocked = 1;
    loop->before_block(loop, loop->block_arg);
  }
}


static void auv__check_cb(uv_check_t* handle) {
  auv__loop_unblock(handle->data);
}


/* Close the loop's own handles and free it: the end of auv_loop_close(),
 * and of auv_loop_new() when the watcher set cannot be opened (the arrays
 * are NULL then: free(NULL) is allowed). */
static void auv__loop_teardown(auv_loop_t* loop) {
  uv_close((uv_handle_t*) &loop->async, NULL);
  uv_close((uv_handle_t*) &loop->uv_timer, NULL);
  uv_close((uv_handle_t*) &loop->prepare, NULL);
  uv_close((uv_handle_t*) &loop->check, NULL);
  /* Handles closed by the caller but not yet through their close callback
   * finish here too. */
  while (uv_loop_close(&loop->uv) == UV_EBUSY)
    uv_run(&loop->uv, UV_RUN_NOWAIT);

  pthread_mutex_destroy(&loop->ts_lock);
  free(loop->ready.items);
  free(loop->io_queue);
  free(loop->ts_items);
  free(loop->heap);
  free(loop);
}


int auv_loop_new(auv_loop_t** loop_out) {
  auv_loop_t* loop;
  int err;

  if (loop_out == NULL)
    return UV_EINVAL;
  *loop_out = NULL;

  loop = calloc(1, sizeof(*loop));
  if (loop == NULL)
    return UV_ENOMEM;

  err = uv_loop_init(&loop->uv);
  if (err != 0)
    goto fail_loop;
  loop->uv.data = loop;
  loop->ws_fd = -1;

  err = pthread_mutex_init(&loop->ts_lock, NULL);
  if (err != 0) {
    err = -err;
    goto fail_mutex;
  }

  err = uv_async_init(&loop->uv, &loop->async, auv__async_cb);
  if (err != 0)
    goto fail_async;
  loop->async.data = loop;
  uv_unref((uv_handle_t*) &loop->async);

  uv_timer_init(&loop->uv, &loop->uv_timer);
  loop->uv_timer.data = loop;
  uv_prepare_init(&loop->uv, &loop->prepare);
  loop->prepare.data = loop;
  uv_unref((uv_handle_t*) &loop->prepare);
  uv_check_init(&loop->uv, &loop->check);
  loop->check.data = loop;
  uv_unref((uv_handle_t*) &loop->check);

  err = auv__watch_set_open(loop);
  if (err != 0)
    goto fail_set;

  *loop_out = loop;
  return 0;

fail_set:
  auv__loop_teardown(loop);
  return err;

fail_async:
  pthread_mutex_destroy(&loop->ts_lock);
fail_mutex:
  uv_loop_close(&loop->uv);
fail_loop:
  free(loop);
  return err;
}


static int auv__is_internal(auv_loop_t* loop, uv_handle_t* handle) {
  return handle == (uv_handle_t*) &loop->async ||
         handle == (uv_handle_t*) &loop->ws_poll ||
         handle == (uv_handle_t*) &loop->uv_timer ||
         handle == (uv_handle_t*) &loop->prepare ||
         handle == (uv_handle_t*) &loop->check;
}


static void auv__count_user_handle(uv_handle_t* handle, void* arg) {
  auv_loop_t* loop;

  loop = handle->loop->data;
  if (!auv__is_internal(loop, handle) && !uv_is_closing(handle))
    (*(size_t*) arg)++;
}


int auv_loop_close(auv_loop_t* loop) {
  size_t user_handles;
  size_t ts_count;

  if (loop == NULL)
    return UV_EINVAL;
  if (loop->running)
    return UV_EBUSY;

  pthread_mutex_lock(&loop->ts_lock);
  ts_count = loop->ts_count;
  pthread_mutex_unlock(&loop->ts_lock);

  user_handles = 0;
  uv_walk(&loop->uv, auv__count_user_handle, &user_handles);
  if (user_handles > 0 || ts_count > 0 || loop->ready.count > 0 ||
      loop->heap_count > 0 || loop->due_head != NULL || loop->work_pending > 0 ||
      loop->dns_pending > 0 || loop->ws_alive > 0)
    return UV_EBUSY;

  auv__watch_set_close(loop);
  auv__loop_teardown(loop);
  return 0;
}


static int auv__loop_has_calls(const auv_loop_t* loop) {
  return loop->ready.count > 0 || loop->due_head != NULL ||
         loop->io_head < loop->io_count;
}


/* --- Recorded I/O (auv__rec_t) ---------------------------------------------
 * Step 1 records, step 4 runs.  A handle or watcher stopped, closed or freed
 * in between is forgotten (its slot emptied), so the queue never points at a
 * freed one: libuv frees a closed handle only in a later uv_run(), by which
 * time its slot is empty, and a watcher empties its slot when it is freed
 * (watch.c). */

/* Record events for step 4; UV_ENOMEM if the queue cannot grow (nothing is
 * recorded then). */
int auv__rec_push(auv_loop_t* loop, auv__rec_t* rec, int status, int events) {
  auv__rec_t** q;
  size_t cap;

  if (rec->slot == 0 && loop->io_count == loop->io_cap) {
    cap = loop->io_cap == 0 ? 64 : loop->io_cap * 2;
    q = realloc(loop->io_queue, cap * sizeof(*q));
    if (q == NULL)
      return UV_ENOMEM;
    loop->io_queue = q;
    loop->io_cap = cap;
  }
  if (status < 0)
    rec->status = status;
  rec->events |= events;
  if (rec->slot == 0) {
    loop->io_queue[loop->io_count++] = rec;
    rec->slot = loop->io_count;
  }
  return 0;
}


void auv__rec_forget(auv_loop_t* loop, auv__rec_t* rec) {
  if (rec->slot == 0)
    return;
  loop->io_queue[rec->slot - 1] = NULL;
  rec->slot = 0;
  rec->status = 0;
  rec->events = 0;
}


static void auv__io_rec_run(auv__rec_t* rec, int status, int events) {
  auv__io_t* io;

  io = (auv__io_t*) ((char*) rec - offsetof(auv__io_t, rec));
  io->cb(&io->poll, status, events);
}


static void auv__io_record_cb(uv_poll_t* handle, int status, int events) {
  auv__io_t* io;
  auv_loop_t* loop;

  io = (auv__io_t*) handle;
  loop = handle->loop->data;
  if (auv__rec_push(loop, &io->rec, status, events) != 0) {
    /* No memory to record it: run it now, out of asyncio's order. */
    auv__loop_unblock(loop);
    io->cb(handle, status, events);
  }
}


static void auv__io_run(auv_loop_t* loop) {
  auv__rec_t* rec;
  int status;
  int events;

  while (loop->io_head < loop->io_count) {
    rec = loop->io_queue[loop->io_head++];
    if (rec == NULL)
      continue;  /* forgotten */
    rec->slot = 0;
    status = rec->status;
    events = rec->events;
    rec->status = 0;
    rec->events = 0;
    rec->run(rec, status, events);  /* may free rec */
    /* After an interrupt the rest run in the next iteration's step 4. */
    if (loop->interrupted)
      return;
  }
  loop->io_head = 0;
  loop->io_count = 0;
}


int auv__io_init(auv_loop_t* loop, auv__io_t* io, int fd) {
  io->cb = NULL;
  io->rec.run = auv__io_rec_run;
  io->rec.status = 0;
  io->rec.events = 0;
  io->rec.slot = 0;
  return uv_poll_init(&loop->uv, &io->poll, fd);
}


int auv__io_start(auv__io_t* io, int events, uv_poll_cb cb) {
  io->cb = cb;
  return uv_poll_start(&io->poll, events, auv__io_record_cb);
}


/* Watch for events (0: stop watching) if they differ from *current, which
 * then holds them: uv_poll_start() re-registers the fd, so streams and
 * datagram sockets call this whenever what they wait for may change. */
int auv__io_update(auv__io_t* io, int* current, int events, uv_poll_cb cb) {
  int err;

  if (events == *current)
    return 0;
  if (events == 0)
    err = auv__io_stop(io);
  else
    err = auv__io_start(io, events, cb);
  if (err == 0)
    *current = events;
  return err;
}


void auv__io_forget(auv__io_t* io) {
  auv__rec_forget(io->poll.loop->data, &io->rec);
}


/* Stopped: what the last poll found for it no longer runs, as asyncio's
 * remove_reader() cancels the handle already in its ready queue. */
int auv__io_stop(auv__io_t* io) {
  auv__io_forget(io);
  return uv_poll_stop(&io->poll);
}


void auv__io_close(auv__io_t* io, uv_close_cb close_cb) {
  auv__io_forget(io);
  uv_close((uv_handle_t*) &io->poll, close_cb);
}


int auv_loop_alive(const auv_loop_t* loop) {
  if (loop == NULL)
    return 0;
  return auv__loop_has_calls(loop) || loop->heap_count > 0 ||
         loop->keepalive > 0 || uv_loop_alive(&loop->uv);
}


static void auv__ready_run(auv_loop_t* loop) {
  auv__ring_t* ring;
  auv__call_t call;
  size_t ntodo;

  ring = &loop->ready;
  /* Only what was queued before this point: calls queued by these
   * callbacks run in the next iteration. */
  for (ntodo = ring->count; ntodo > 0; ntodo--) {
    /* A callback may have discarded the queue (auv_loop_discard_calls). */
    if (ring->count == 0)
      break;
    call = ring->items[ring->head];
    ring->head = (ring->head + 1) & ring->mask;
    ring->count--;
    call.cb(loop, call.arg);
    if (loop->interrupted)
      break;
  }
}


static void auv__loop_iterate(auv_loop_t* loop, int nowait) {
  uv_run_mode mode;

  if (nowait || loop->stop_flag || auv__loop_has_calls(loop)) {
    mode = UV_RUN_NOWAIT;
    loop->may_block = 0;
  } else {
    auv__timers_arm(loop);
    mode = UV_RUN_ONCE;
    loop->may_block = 1;
  }

  uv_run(&loop->uv, mode);
  loop->may_block = 0;
  auv__loop_unblock(loop);
  if (loop->interrupted)
    return;

  auv__timers_collect(loop);
  auv__ready_run(loop);
  if (loop->interrupted)
    return;
  auv__io_run(loop);
  if (loop->interrupted)
    return;
  auv__timers_fire(loop);
}


int auv_loop_run(auv_loop_t* loop, auv_run_mode mode) {
  if (loop == NULL)
    return UV_EINVAL;
  if (loop->running)
    return UV_EBUSY;

  loop->running = 1;
  loop->interrupted = 0;

  switch (mode) {
    case AUV_RUN_NOWAIT:
      auv__loop_iterate(loop, 1);
      break;
    case AUV_RUN_ONCE:
      auv__loop_iterate(loop, 0);
      break;
    default:
      /* A stop requested before the run still gets one iteration. */
      while (loop->stop_flag || auv_loop_alive(loop)) {
        auv__loop_iterate(loop, 0);
        if (loop->stop_flag || loop->interrupted)
          break;
      }
      break;
  }

  loop->stop_flag = 0;
  loop->interrupted = 0;
  loop->running = 0;
  return auv_loop_alive(loop);
}


void auv_loop_stop(auv_loop_t* loop) {
  if (loop != NULL)
    loop->stop_flag = 1;
}


void auv_loop_interrupt(auv_loop_t* loop) {
  if (loop == NULL || !loop->running)
    return;
  loop->interrupted = 1;
  /* An interrupt from an I/O callback must end uv_run() too. */
  uv_stop(&loop->uv);
}


int auv_loop_is_running(const auv_loop_t* loop) {
  return loop != NULL && loop->running;
}


void auv_loop_ref(auv_loop_t* loop) {
  if (loop != NULL && loop->keepalive++ == 0)
    uv_ref((uv_handle_t*) &loop->async);
}


void auv_loop_unref(auv_loop_t* loop) {
  if (loop != NULL && loop->keepalive > 0 && --loop->keepalive == 0)
    uv_unref((uv_handle_t*) &loop->async);
}


uint64_t auv_loop_now(const auv_loop_t* loop) {
  return uv_hrtime();
}


void auv_loop_set_data(auv_loop_t* loop, void* data) {
  if (loop != NULL)
    loop->data = data;
}


void* auv_loop_get_data(const auv_loop_t* loop) {
  return loop == NULL ? NULL : loop->data;
}


struct uv_loop_s* auv_loop_uv(auv_loop_t* loop) {
  return loop == NULL ? NULL : &loop->uv;
}


int auv_loop_set_block_hooks(auv_loop_t* loop,
                             auv_block_cb before,
                             auv_block_cb after,
                             void* arg) {
  if (loop == NULL || (before == NULL) != (after == NULL))
    return UV_EINVAL;
  if (loop->running)
    return UV_EBUSY;

  loop->before_block = before;
  loop->after_block = after;
  loop->block_arg = arg;
  if (before != NULL) {
    uv_prepare_start(&loop->prepare, auv__prepare_cb);
    uv_check_start(&loop->check, auv__check_cb);
  } else {
    uv_prepare_stop(&loop->prepare);
    uv_check_stop(&loop->check);
  }
  return 0;
}


int auv_loop_call_soon(auv_loop_t* loop, auv_call_cb cb, void* arg) {
  if (loop == NULL || cb == NULL)
    return UV_EINVAL;
  return auv__ring_push(&loop->ready, cb, arg);
}


size_t auv_loop_ready_count(const auv_loop_t* loop) {
  return loop == NULL ? 0 : loop->ready.count;
}


void auv_loop_discard_calls(auv_loop_t* loop, auv_call_cb dispose) {
  auv__call_t call;
  auv__call_t* items;
  size_t count;
  size_t i;

  if (loop == NULL)
    return;

  /* dispose may queue new calls: take each item off before calling it. */
  while (loop->ready.count > 0) {
    call = loop->ready.items[loop->ready.head];
    loop->ready.head = (loop->ready.head + 1) & loop->ready.mask;
    loop->ready.count--;
    if (dispose != NULL)
      dispose(loop, call.arg);
  }

  pthread_mutex_lock(&loop->ts_lock);
  items = loop->ts_items;
  count = loop->ts_count;
  loop->ts_items = NULL;
  loop->ts_count = 0;
  loop->ts_cap = 0;
  pthread_mutex_unlock(&loop->ts_lock);
  for (i = 0; i < count; i++)
    if (dispose != NULL)
      dispose(loop, items[i].arg);
  free(items);
}


int auv_loop_walk_calls(const auv_loop_t* loop,
                        int (*visit)(auv_call_cb cb, void* arg, void* ctx),
                        void* ctx) {
  const auv__call_t* call;
  size_t i;
  int r;

  if (loop == NULL || visit == NULL)
    return UV_EINVAL;
  for (i = 0; i < loop->ready.count; i++) {
    call = &loop->ready.items[(loop->ready.head + i) & loop->ready.mask];
    r = visit(call->cb, call->arg, ctx);
    if (r != 0)
      return r;
  }
  return 0;
}


int auv_loop_call_threadsafe(auv_loop_t* loop, auv_call_cb cb, void* arg) {
  auv__call_t* items;
  size_t cap;

  if (loop == NULL || cb == NULL)
    return UV_EINVAL;

  pthread_mutex_lock(&loop->ts_lock);
  if (loop->ts_count == loop->ts_cap) {
    cap = loop->ts_cap == 0 ? 16 : loop->ts_cap * 2;
    items = realloc(loop->ts_items, cap * sizeof(*items));
    if (items == NULL) {
      pthread_mutex_unlock(&loop->ts_lock);
      return UV_ENOMEM;
    }
    loop->ts_items = items;
    loop->ts_cap = cap;
  }
  loop->ts_items[loop->ts_count].cb = cb;
  loop->ts_items[loop->ts_count].arg = arg;
  loop->ts_count++;
  pthread_mutex_unlock(&loop->ts_lock);

  return uv_async_send(&loop->async);
}


int auv_loop_wakeup(auv_loop_t* loop) {
  if (loop == NULL)
    return UV_EINVAL;
  return uv_async_send(&loop->async);
}
