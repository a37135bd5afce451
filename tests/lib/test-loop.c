#include <string.h>

#include <uv.h>

#include "runner.h"

static int order[16];
static int norder;

static void record_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = (int) (intptr_t) arg;
}


TEST_IMPL(loop_new_close) {
  auv_loop_t* loop;

  ASSERT_EQ(UV_EINVAL, auv_loop_new(NULL));
  ASSERT_EQ(UV_EINVAL, auv_loop_close(NULL));
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT(loop != NULL);
  ASSERT(!auv_loop_is_running(loop));
  ASSERT(!auv_loop_alive(loop));
  CLOSE_LOOP(loop);
}


TEST_IMPL(loop_run_empty) {
  auv_loop_t* loop;

  ASSERT_OK(auv_loop_new(&loop));
  /* Nothing to do: returns at once in every mode. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(UV_EINVAL, auv_loop_run(NULL, AUV_RUN_DEFAULT));
  CLOSE_LOOP(loop);
}


TEST_IMPL(loop_call_soon_fifo) {
  auv_loop_t* loop;
  int i;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  for (i = 0; i < 5; i++)
    ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) (intptr_t) i));
  ASSERT_EQ(5, auv_loop_ready_count(loop));
  ASSERT_EQ(UV_EINVAL, auv_loop_call_soon(loop, NULL, NULL));
  ASSERT_EQ(UV_EINVAL, auv_loop_call_soon(NULL, record_cb, NULL));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(5, norder);
  for (i = 0; i < 5; i++)
    ASSERT_EQ(i, order[i]);
  CLOSE_LOOP(loop);
}


static void requeue_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = (int) (intptr_t) arg;
  if ((intptr_t) arg < 3)
    ASSERT_OK(auv_loop_call_soon(loop, requeue_cb, (char*) arg + 1));
}


TEST_IMPL(loop_call_soon_next_iteration) {
  auv_loop_t* loop;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_loop_call_soon(loop, requeue_cb, (void*) 1));
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 10));
  /* One iteration runs what was queued before it, nothing queued during. */
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(2, norder);
  ASSERT_EQ(1, order[0]);
  ASSERT_EQ(10, order[1]);
  ASSERT_EQ(1, auv_loop_ready_count(loop));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(3, norder);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(4, norder);
  ASSERT_EQ(3, order[3]);
  CLOSE_LOOP(loop);
}


static int chain_count;

static void chain_cb(auv_loop_t* loop, void* arg) {
  int i;

  chain_count++;
  /* Queue more than the ring holds while it is being consumed. */
  if (chain_count == 1)
    for (i = 0; i < 1000; i++)
      ASSERT_OK(auv_loop_call_soon(loop, chain_cb, NULL));
}


TEST_IMPL(loop_ring_growth) {
  auv_loop_t* loop;
  int i;

  chain_count = 0;
  ASSERT_OK(auv_loop_new(&loop));
  /* Wrap the ring before it grows so that growth must unwrap it. */
  for (i = 0; i < 40; i++)
    ASSERT_OK(auv_loop_call_soon(loop, record_cb, NULL));
  norder = 0;
  auv_loop_discard_calls(loop, NULL);
  for (i = 0; i < 50; i++)
    ASSERT_OK(auv_loop_call_soon(loop, chain_cb, NULL));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(50, chain_count);
  ASSERT_EQ(1000, auv_loop_ready_count(loop));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1050, chain_count);
  CLOSE_LOOP(loop);
}


static int stop_runs;

static void stop_cb(auv_loop_t* loop, void* arg) {
  stop_runs++;
  auv_loop_stop(loop);
  /* Queued after stop(): runs in the next run, not this one. */
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 7));
}


TEST_IMPL(loop_stop) {
  auv_loop_t* loop;

  norder = 0;
  stop_runs = 0;
  ASSERT_OK(auv_loop_new(&loop));
  auv_loop_ref(loop);
  ASSERT(auv_loop_alive(loop));
  ASSERT_OK(auv_loop_call_soon(loop, stop_cb, NULL));
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 3));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, stop_runs);
  /* The callback queued before stop() in the same iteration still ran. */
  ASSERT_EQ(1, norder);
  ASSERT_EQ(3, order[0]);
  auv_loop_unref(loop);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, norder);
  ASSERT_EQ(7, order[1]);
  CLOSE_LOOP(loop);
}


TEST_IMPL(loop_stop_before_run) {
  auv_loop_t* loop;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  auv_loop_ref(loop);
  ASSERT_OK(auv_loop_call_soon(loop, requeue_cb, (void*) 1));
  /* Stopped before running: one iteration, without blocking. */
  auv_loop_stop(loop);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, norder);
  auv_loop_unref(loop);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(3, norder);
  CLOSE_LOOP(loop);
}


static void interrupt_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = 100;
  auv_loop_interrupt(loop);
}


TEST_IMPL(loop_interrupt) {
  auv_loop_t* loop;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 1));
  ASSERT_OK(auv_loop_call_soon(loop, interrupt_cb, NULL));
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 2));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, norder);
  ASSERT_EQ(1, auv_loop_ready_count(loop));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(3, norder);
  ASSERT_EQ(2, order[2]);
  /* Outside a run, interrupt does nothing. */
  auv_loop_interrupt(loop);
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 4));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(4, norder);
  CLOSE_LOOP(loop);
}


static void reentrant_cb(auv_loop_t* loop, void* arg) {
  ASSERT(auv_loop_is_running(loop));
  ASSERT_EQ(UV_EBUSY, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  *(int*) arg = 1;
}


TEST_IMPL(loop_reentrant_run) {
  auv_loop_t* loop;
  int called;

  called = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_loop_call_soon(loop, reentrant_cb, &called));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, called);
  CLOSE_LOOP(loop);
}


static int disposed;

static void dispose_cb(auv_loop_t* loop, void* arg) {
  disposed += (int) (intptr_t) arg;
}


static void noop_timer_cb(auv_timer_t* timer) {
}


TEST_IMPL(loop_close_busy) {
  auv_loop_t* loop;
  auv_timer_t* timer;
  uv_idle_t idle;

  disposed = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) 5));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_loop_discard_calls(loop, dispose_cb);
  ASSERT_EQ(5, disposed);
  ASSERT_EQ(0, auv_loop_ready_count(loop));

  timer = malloc(auv_timer_size());
  ASSERT_OK(auv_timer_init(loop, timer));
  ASSERT_OK(auv_timer_start(timer, noop_timer_cb, UINT64_MAX));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  ASSERT_OK(auv_timer_stop(timer));
  free(timer);

  /* A libuv handle of the caller's keeps the loop open until closed. */
  ASSERT_OK(uv_idle_init(auv_loop_uv(loop), &idle));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  uv_close((uv_handle_t*) &idle, NULL);
  CLOSE_LOOP(loop);
}


static int lock_held;
static int blocks;
static int unblocks;

static void before_block(auv_loop_t* loop, void* arg) {
  ASSERT(lock_held);
  ASSERT_EQ((void*) &blocks, arg);
  lock_held = 0;
  blocks++;
}


static void after_block(auv_loop_t* loop, void* arg) {
  ASSERT(!lock_held);
  lock_held = 1;
  unblocks++;
}


static void hook_timer_cb(auv_timer_t* timer) {
  ASSERT(lock_held);
  *(int*) auv_timer_get_data(timer) += 1;
}


static void hook_call_cb(auv_loop_t* loop, void* arg) {
  ASSERT(lock_held);
}


TEST_IMPL(loop_block_hooks) {
  auv_loop_t* loop;
  auv_timer_t* timer;
  int fired;

  lock_held = 1;
  blocks = unblocks = 0;
  fired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_loop_set_block_hooks(loop, before_block, NULL, NULL));
  ASSERT_OK(auv_loop_set_block_hooks(loop, before_block, after_block, &blocks));

  /* Ready calls: the loop never blocks, the hooks are not called. */
  ASSERT_OK(auv_loop_call_soon(loop, hook_call_cb, NULL));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, blocks);

  timer = malloc(auv_timer_size());
  ASSERT_OK(auv_timer_init(loop, timer));
  auv_timer_set_data(timer, &fired);
  /* Far enough ahead that the first poll comes before it even on a loaded
   * machine under valgrind (5 ms did not): the loop must block for it. */
  ASSERT_OK(auv_timer_start(timer, hook_timer_cb, auv_loop_now(loop) + 100000000));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, fired);
  ASSERT(blocks >= 1);
  ASSERT_EQ(blocks, unblocks);
  ASSERT(lock_held);

  ASSERT_OK(auv_loop_set_block_hooks(loop, NULL, NULL, NULL));
  free(timer);
  CLOSE_LOOP(loop);
}


TEST_IMPL(loop_data) {
  auv_loop_t* loop;
  int x;

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT(auv_loop_get_data(loop) == NULL);
  auv_loop_set_data(loop, &x);
  ASSERT(auv_loop_get_data(loop) == &x);
  ASSERT(auv_loop_uv(loop) != NULL);
  ASSERT(auv_loop_uv(NULL) == NULL);
  ASSERT(auv_loop_now(loop) > 0);
  CLOSE_LOOP(loop);
}


static void discard_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = 99;
  auv_loop_discard_calls(loop, NULL);
}


TEST_IMPL(loop_discard_during_run) {
  auv_loop_t* loop;
  int i;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_loop_call_soon(loop, discard_cb, NULL));
  for (i = 0; i < 3; i++)
    ASSERT_OK(auv_loop_call_soon(loop, record_cb, (void*) (intptr_t) i));
  /* The rest of this iteration's calls are gone, not run from stale slots. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(1, norder);
  ASSERT_EQ(99, order[0]);
  CLOSE_LOOP(loop);
}
