/* Timers: one binary min-heap per loop on (deadline, start order), driven by
 * a single uv_timer_t that only bounds the poll.  Starting and stopping a
 * timer is O(log n) with no allocation (the heap array grows by doubling),
 * so cancelling many timers is cheap.  Expired timers move to a due list at
 * the start of an iteration and fire after the calls queued before them
 * (see loop.c). */
#include <stdlib.h>

#include "internal.h"

#define AUV__NS_PER_MS 1000000ULL


static inline int auv__timer_less(const auv_timer_t* a, const auv_timer_t* b) {
  if (a->deadline != b->deadline)
    return a->deadline < b->deadline;
  return a->seq < b->seq;
}


static inline void auv__heap_set(auv_loop_t* loop, size_t i, auv_timer_t* t) {
  loop->heap[i] = t;
  t->heap_index = i;
}


static void auv__heap_sift_up(auv_loop_t* loop, size_t i) {
  auv_timer_t* t;
  size_t parent;

  t = loop->heap[i];
  while (i > 0) {
    parent = (i - 1) / 2;
    if (!auv__timer_less(t, loop->heap[parent]))
      break;
    auv__heap_set(loop, i, loop->heap[parent]);
    i = parent;
  }
  auv__heap_set(loop, i, t);
}


static void auv__heap_sift_down(auv_loop_t* loop, size_t i) {
  auv_timer_t* t;
  size_t child;
  size_t n;

  n = loop->heap_count;
  t = loop->heap[i];
  for (;;) {
    child = 2 * i + 1;
    if (child >= n)
      break;
    if (child + 1 < n && auv__timer_less(loop->heap[child + 1], loop->heap[child]))
      child++;
    if (!auv__timer_less(loop->heap[child], t))
      break;
    auv__heap_set(loop, i, loop->heap[child]);
    i = child;
  }
  auv__heap_set(loop, i, t);
}


static int auv__heap_insert(auv_loop_t* loop, auv_timer_t* t) {
  auv_timer_t** heap;
  size_t cap;

  if (loop->heap_count == loop->heap_cap) {
    cap = loop->heap_cap == 0 ? 64 : loop->heap_cap * 2;
    heap = realloc(loop->heap, cap * sizeof(*heap));
    if (heap == NULL)
      return UV_ENOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
  }

  loop->heap[loop->heap_count] = t;
  t->heap_index = loop->heap_count++;
  auv__heap_sift_up(loop, t->heap_index);
  t->state = AUV__TIMER_HEAP;
  return 0;
}


static void auv__heap_remove(auv_loop_t* loop, auv_timer_t* t) {
  auv_timer_t* last;
  size_t i;

  i = t->heap_index;
  last = loop->heap[--loop->heap_count];
  if (last != t) {
    auv__heap_set(loop, i, last);
    if (i > 0 && auv__timer_less(last, loop->heap[(i - 1) / 2]))
      auv__heap_sift_up(loop, i);
    else
      auv__heap_sift_down(loop, i);
  }
  t->state = AUV__TIMER_IDLE;
}


static void auv__due_unlink(auv_loop_t* loop, auv_timer_t* t) {
  if (t->due_prev != NULL)
    t->due_prev->due_next = t->due_next;
  else
    loop->due_head = t->due_next;
  if (t->due_next != NULL)
    t->due_next->due_prev = t->due_prev;
  else
    loop->due_tail = t->due_prev;
  t->due_prev = NULL;
  t->due_next = NULL;
  t->state = AUV__TIMER_IDLE;
}


static void auv__uv_timer_cb(uv_timer_t* handle) {
  auv_loop_t* loop;

  /* The heap is examined once uv_run() returns.  libuv runs timers before
   * it polls: make that poll return at once, or it would block with timers
   * due (uv_stop() zeroes the poll timeout and ends this uv_run()). */
  loop = handle->data;
  auv__loop_unblock(loop);
  loop->may_block = 0;
  uv_stop(&loop->uv);
}


size_t auv_timer_size(void) {
  return sizeof(auv_timer_t);
}


int auv_timer_init(auv_loop_t* loop, auv_timer_t* timer) {
  if (loop == NULL || timer == NULL)
    return UV_EINVAL;
  timer->loop = loop;
  timer->cb = NULL;
  timer->data = NULL;
  timer->deadline = 0;
  timer->seq = 0;
  timer->heap_index = 0;
  timer->due_prev = NULL;
  timer->due_next = NULL;
  timer->state = AUV__TIMER_IDLE;
  return 0;
}


int auv_timer_start(auv_timer_t* timer, auv_timer_cb cb, uint64_t deadline) {
  auv_loop_t* loop;
  int old_state;
  uint64_t old_deadline;
  uint64_t old_seq;

  if (timer == NULL || cb == NULL || timer->loop == NULL)
    return UV_EINVAL;

  loop = timer->loop;
  timer->cb = cb;
  old_state = timer->state;
  old_deadline = timer->deadline;
  old_seq = timer->seq;
  timer->deadline = deadline;
  timer->seq = loop->timer_seq++;

  if (old_state == AUV__TIMER_HEAP) {
    /* Re-key in place: no removal, no allocation. */
    if (deadline < old_deadline ||
        (deadline == old_deadline && timer->seq < old_seq))
      auv__heap_sift_up(loop, timer->heap_index);
    else
      auv__heap_sift_down(loop, timer->heap_index);
    return 0;
  }

  if (old_state == AUV__TIMER_DUE)
    auv__due_unlink(loop, timer);
  return auv__heap_insert(loop, timer);
}


int auv_timer_restart(auv_timer_t* timer, uint64_t deadline) {
  if (timer == NULL || timer->cb == NULL)
    return UV_EINVAL;
  return auv_timer_start(timer, timer->cb, deadline);
}


int auv_timer_stop(auv_timer_t* timer) {
  if (timer == NULL || timer->loop == NULL)
    return UV_EINVAL;
  if (timer->state == AUV__TIMER_HEAP)
    auv__heap_remove(timer->loop, timer);
  else if (timer->state == AUV__TIMER_DUE)
    auv__due_unlink(timer->loop, timer);
  return 0;
}


int auv_timer_is_active(const auv_timer_t* timer) {
  return timer != NULL && timer->state != AUV__TIMER_IDLE;
}


uint64_t auv_timer_get_deadline(const auv_timer_t* timer) {
  return timer == NULL ? 0 : timer->deadline;
}


auv_loop_t* auv_timer_get_loop(const auv_timer_t* timer) {
  return timer == NULL ? NULL : timer->loop;
}


void auv_timer_set_data(auv_timer_t* timer, void* data) {
  if (timer != NULL)
    timer->data = data;
}


void* auv_timer_get_data(const auv_timer_t* timer) {
  return timer == NULL ? NULL : timer->data;
}


size_t auv_loop_timer_count(const auv_loop_t* loop) {
  auv_timer_t* t;
  size_t n;

  if (loop == NULL)
    return 0;
  n = loop->heap_count;
  for (t = loop->due_head; t != NULL; t = t->due_next)
    n++;
  return n;
}


auv_timer_t* auv_loop_next_timer(const auv_loop_t* loop) {
  if (loop == NULL)
    return NULL;
  if (loop->due_head != NULL)
    return loop->due_head;
  return loop->heap_count > 0 ? loop->heap[0] : NULL;
}


int auv_loop_walk_timers(const auv_loop_t* loop,
                         int (*visit)(auv_timer_t* timer, void* ctx),
                         void* ctx) {
  auv_timer_t* t;
  size_t i;
  int r;

  if (loop == NULL || visit == NULL)
    return UV_EINVAL;
  for (t = loop->due_head; t != NULL; t = t->due_next) {
    r = visit(t, ctx);
    if (r != 0)
      return r;
  }
  for (i = 0; i < loop->heap_count; i++) {
    r = visit(loop->heap[i], ctx);
    if (r != 0)
      return r;
  }
  return 0;
}


auv_timer_cb auv_timer_get_cb(const auv_timer_t* timer) {
  return timer == NULL ? NULL : timer->cb;
}


void auv__timers_collect(auv_loop_t* loop) {
  auv_timer_t* t;
  uint64_t now;

  if (loop->heap_count == 0)
    return;

  now = uv_hrtime();
  while (loop->heap_count > 0 && loop->heap[0]->deadline <= now) {
    t = loop->heap[0];
    auv__heap_remove(loop, t);
    t->state = AUV__TIMER_DUE;
    t->due_next = NULL;
    t->due_prev = loop->due_tail;
    if (loop->due_tail != NULL)
      loop->due_tail->due_next = t;
    else
      loop->due_head = t;
    loop->due_tail = t;
  }
}


void auv__timers_fire(auv_loop_t* loop) {
  auv_timer_t* t;

  /* A callback may stop or restart other due timers: they unlink
   * themselves, so always take the current head. */
  while ((t = loop->due_head) != NULL) {
    auv__due_unlink(loop, t);
    t->cb(t);
    if (loop->interrupted)
      break;
  }
}


void auv__timers_arm(auv_loop_t* loop) {
  uint64_t deadline;
  uint64_t now;
  uint64_t ms;

  if (loop->heap_count == 0) {
    if (uv_is_active((uv_handle_t*) &loop->uv_timer))
      uv_timer_stop(&loop->uv_timer);
    return;
  }

  deadline = loop->heap[0]->deadline;
  if (deadline == loop->armed_deadline &&
      uv_is_active((uv_handle_t*) &loop->uv_timer))
    return;

  now = uv_hrtime();
  /* Round up: libuv's clock has millisecond resolution and waking early
   * costs an extra iteration, waking late costs nothing below 1 ms. */
  ms = deadline > now ? (deadline - now + AUV__NS_PER_MS - 1) / AUV__NS_PER_MS : 0;
  uv_update_time(&loop->uv);
  uv_timer_start(&loop->uv_timer, auv__uv_timer_cb, ms, 0);
  loop->armed_deadline = deadline;
}
