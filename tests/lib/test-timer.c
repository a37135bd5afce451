#include <string.h>

#include <uv.h>

#include "runner.h"

#define MS 1000000ULL

static int fired[64];
static int nfired;

static void record_timer_cb(auv_timer_t* timer) {
  fired[nfired++] = (int) (intptr_t) auv_timer_get_data(timer);
}

static void record_call_cb(auv_loop_t* loop, void* arg) {
  fired[nfired++] = (int) (intptr_t) arg;
}

static auv_timer_t* new_timer(auv_loop_t* loop, int id) {
  auv_timer_t* t;

  t = malloc(auv_timer_size());
  ASSERT(t != NULL);
  ASSERT_OK(auv_timer_init(loop, t));
  auv_timer_set_data(t, (void*) (intptr_t) id);
  return t;
}


TEST_IMPL(timer_order) {
  auv_loop_t* loop;
  auv_timer_t* t[8];
  uint64_t base;
  int i;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  base = auv_loop_now(loop);
  /* Started latest-first: they must fire earliest-first. */
  for (i = 0; i < 8; i++) {
    t[i] = new_timer(loop, 7 - i);
    ASSERT_OK(auv_timer_start(t[i], record_timer_cb, base + (7 - i) * MS));
  }
  ASSERT_EQ(8, auv_loop_timer_count(loop));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(8, nfired);
  for (i = 0; i < 8; i++) {
    ASSERT_EQ(i, fired[i]);
    ASSERT(!auv_timer_is_active(t[i]));
    free(t[i]);
  }
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_ties_in_start_order) {
  auv_loop_t* loop;
  auv_timer_t* t[10];
  uint64_t when;
  int i;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  when = auv_loop_now(loop) + MS;
  for (i = 0; i < 10; i++) {
    t[i] = new_timer(loop, i);
    ASSERT_OK(auv_timer_start(t[i], record_timer_cb, when));
  }
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(10, nfired);
  for (i = 0; i < 10; i++) {
    ASSERT_EQ(i, fired[i]);
    free(t[i]);
  }
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_stop) {
  auv_loop_t* loop;
  auv_timer_t* t[6];
  uint64_t base;
  int i;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  base = auv_loop_now(loop);
  for (i = 0; i < 6; i++) {
    t[i] = new_timer(loop, i);
    ASSERT_OK(auv_timer_start(t[i], record_timer_cb, base + i * MS));
  }
  ASSERT_OK(auv_timer_stop(t[0]));
  ASSERT_OK(auv_timer_stop(t[3]));
  ASSERT_OK(auv_timer_stop(t[3]));  /* a no-op */
  ASSERT(!auv_timer_is_active(t[3]));
  ASSERT(auv_timer_is_active(t[4]));
  ASSERT_EQ(4, auv_loop_timer_count(loop));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(4, nfired);
  ASSERT_EQ(1, fired[0]);
  ASSERT_EQ(2, fired[1]);
  ASSERT_EQ(4, fired[2]);
  ASSERT_EQ(5, fired[3]);
  for (i = 0; i < 6; i++)
    free(t[i]);
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_restart) {
  auv_loop_t* loop;
  auv_timer_t* a;
  auv_timer_t* b;
  uint64_t base;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  base = auv_loop_now(loop);
  a = new_timer(loop, 1);
  b = new_timer(loop, 2);
  ASSERT_EQ(UV_EINVAL, auv_timer_restart(a, base));  /* never started */
  ASSERT_OK(auv_timer_start(a, record_timer_cb, base + 1 * MS));
  ASSERT_OK(auv_timer_start(b, record_timer_cb, base + 2 * MS));
  /* Move a after b, then b after a again. */
  ASSERT_OK(auv_timer_restart(a, base + 3 * MS));
  ASSERT_EQ(base + 3 * MS, auv_timer_get_deadline(a));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, nfired);
  ASSERT_EQ(2, fired[0]);
  ASSERT_EQ(1, fired[1]);
  /* A fired timer can be restarted. */
  ASSERT_OK(auv_timer_restart(b, auv_loop_now(loop)));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(3, nfired);
  ASSERT_EQ(2, fired[2]);
  free(a);
  free(b);
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_many_cancel) {
  enum { N = 100000 };
  auv_loop_t* loop;
  char* mem;
  size_t sz;
  uint64_t base;
  unsigned int r;
  int i;

  ASSERT_OK(auv_loop_new(&loop));
  sz = auv_timer_size();
  mem = malloc(sz * N);
  ASSERT(mem != NULL);
  base = auv_loop_now(loop) + 3600ULL * 1000 * MS;
  r = 12345;
  for (i = 0; i < N; i++) {
    r = r * 1103515245 + 12345;
    ASSERT_OK(auv_timer_init(loop, (auv_timer_t*) (mem + i * sz)));
    ASSERT_OK(auv_timer_start((auv_timer_t*) (mem + i * sz), record_timer_cb,
                              base + (r % 100000) * MS));
  }
  ASSERT_EQ(N, auv_loop_timer_count(loop));
  /* Stop in an order unrelated to the heap's; the heap stays consistent:
   * what is left always comes out in deadline order. */
  for (i = 0; i < N; i += 2)
    ASSERT_OK(auv_timer_stop((auv_timer_t*) (mem + i * sz)));
  {
    uint64_t last;
    auv_timer_t* t;

    last = 0;
    while ((t = auv_loop_next_timer(loop)) != NULL) {
      ASSERT(auv_timer_get_deadline(t) >= last);
      last = auv_timer_get_deadline(t);
      ASSERT_OK(auv_timer_stop(t));
    }
  }
  ASSERT_EQ(0, auv_loop_timer_count(loop));
  free(mem);
  CLOSE_LOOP(loop);
}


static void start_due_timer_cb(auv_loop_t* loop, void* arg) {
  fired[nfired++] = 1;
  /* Already due, but started during this iteration: fires in the next
   * one, after the call queued below (asyncio's ordering). */
  ASSERT_OK(auv_timer_start(arg, record_timer_cb, 0));
  ASSERT_OK(auv_loop_call_soon(loop, record_call_cb, (void*) 2));
}


TEST_IMPL(timer_started_during_iteration_waits) {
  auv_loop_t* loop;
  auv_timer_t* t;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  t = new_timer(loop, 3);
  ASSERT_OK(auv_loop_call_soon(loop, start_due_timer_cb, t));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(1, nfired);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(3, nfired);
  ASSERT_EQ(2, fired[1]);
  ASSERT_EQ(3, fired[2]);
  free(t);
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_after_queued_calls) {
  auv_loop_t* loop;
  auv_timer_t* t;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  t = new_timer(loop, 2);
  /* The timer is due at once but the call was queued first. */
  ASSERT_OK(auv_timer_start(t, record_timer_cb, 0));
  ASSERT_OK(auv_loop_call_soon(loop, record_call_cb, (void*) 1));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(2, nfired);
  ASSERT_EQ(1, fired[0]);
  ASSERT_EQ(2, fired[1]);
  free(t);
  CLOSE_LOOP(loop);
}


static void stop_other_cb(auv_timer_t* timer) {
  fired[nfired++] = (int) (intptr_t) auv_timer_get_data(timer);
  ASSERT_OK(auv_timer_stop(*(auv_timer_t**) ((char*) timer + auv_timer_size())));
}


TEST_IMPL(timer_stop_due) {
  auv_loop_t* loop;
  auv_timer_t* a;
  auv_timer_t* b;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  /* a carries a pointer to b after its timer memory. */
  a = malloc(auv_timer_size() + sizeof(auv_timer_t*));
  ASSERT_OK(auv_timer_init(loop, a));
  auv_timer_set_data(a, (void*) 1);
  b = new_timer(loop, 2);
  *(auv_timer_t**) ((char*) a + auv_timer_size()) = b;
  ASSERT_OK(auv_timer_start(a, stop_other_cb, 0));
  ASSERT_OK(auv_timer_start(b, record_timer_cb, 0));
  /* Both are due in the same iteration; a stops b before it fires. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, nfired);
  ASSERT_EQ(1, fired[0]);
  ASSERT(!auv_timer_is_active(b));
  free(a);
  free(b);
  CLOSE_LOOP(loop);
}


static void check_deadline_cb(auv_timer_t* timer) {
  ASSERT(auv_loop_now(auv_timer_get_loop(timer)) >= auv_timer_get_deadline(timer));
  nfired++;
}


TEST_IMPL(timer_deadline_respected) {
  auv_loop_t* loop;
  auv_timer_t* t[5];
  uint64_t base;
  int i;

  nfired = 0;
  ASSERT_OK(auv_loop_new(&loop));
  base = auv_loop_now(loop);
  for (i = 0; i < 5; i++) {
    t[i] = new_timer(loop, i);
    /* Deadlines that are not whole milliseconds. */
    ASSERT_OK(auv_timer_start(t[i], check_deadline_cb, base + i * 3 * MS + 123457));
  }
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(5, nfired);
  for (i = 0; i < 5; i++)
    free(t[i]);
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_next_timer) {
  auv_loop_t* loop;
  auv_timer_t* a;
  auv_timer_t* b;

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT(auv_loop_next_timer(loop) == NULL);
  a = new_timer(loop, 1);
  b = new_timer(loop, 2);
  ASSERT_OK(auv_timer_start(a, record_timer_cb, 2000));
  ASSERT_OK(auv_timer_start(b, record_timer_cb, 1000));
  ASSERT(auv_loop_next_timer(loop) == b);
  ASSERT(auv_timer_get_loop(b) == loop);
  ASSERT_OK(auv_timer_stop(b));
  ASSERT(auv_loop_next_timer(loop) == a);
  ASSERT_OK(auv_timer_stop(a));
  ASSERT(auv_loop_next_timer(loop) == NULL);
  free(a);
  free(b);
  CLOSE_LOOP(loop);
}


TEST_IMPL(timer_einval) {
  auv_loop_t* loop;
  auv_timer_t* t;

  ASSERT_OK(auv_loop_new(&loop));
  t = malloc(auv_timer_size());
  ASSERT_EQ(UV_EINVAL, auv_timer_init(NULL, t));
  ASSERT_EQ(UV_EINVAL, auv_timer_init(loop, NULL));
  ASSERT_OK(auv_timer_init(loop, t));
  ASSERT_EQ(UV_EINVAL, auv_timer_start(t, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_timer_start(NULL, record_timer_cb, 0));
  ASSERT_EQ(UV_EINVAL, auv_timer_stop(NULL));
  ASSERT(!auv_timer_is_active(NULL));
  ASSERT(!auv_timer_is_active(t));
  free(t);
  CLOSE_LOOP(loop);
}


static void stop_loop_cb(auv_timer_t* timer) {
  auv_loop_stop(auv_timer_get_loop(timer));
}


TEST_IMPL(timer_due_with_keepalive) {
  auv_loop_t* loop;
  auv_timer_t* t;

  /* Kept alive with nothing else to do: the poll must not block while a
   * timer is due (libuv fires its timer before polling). */
  ASSERT_OK(auv_loop_new(&loop));
  auv_loop_ref(loop);
  t = new_timer(loop, 0);
  ASSERT_OK(auv_timer_start(t, stop_loop_cb, auv_loop_now(loop)));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_OK(auv_timer_start(t, stop_loop_cb, auv_loop_now(loop) + 2 * MS));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_DEFAULT));
  auv_loop_unref(loop);
  free(t);
  CLOSE_LOOP(loop);
}
