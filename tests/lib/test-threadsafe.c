#include <pthread.h>

#include <uv.h>

#include "runner.h"

enum { NCALLS = 2000 };

static int received;

static void count_cb(auv_loop_t* loop, void* arg) {
  received++;
  if (received == NCALLS)
    auv_loop_stop(loop);
}


static void* post_thread(void* arg) {
  auv_loop_t* loop;
  int i;

  loop = arg;
  for (i = 0; i < NCALLS; i++)
    ASSERT_OK(auv_loop_call_threadsafe(loop, count_cb, NULL));
  return NULL;
}


TEST_IMPL(threadsafe_calls) {
  auv_loop_t* loop;
  pthread_t tid;

  received = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_loop_call_threadsafe(loop, NULL, NULL));
  /* Kept alive with nothing to do: blocks until the thread's calls come. */
  auv_loop_ref(loop);
  ASSERT_OK(pthread_create(&tid, NULL, post_thread, loop));
  auv_loop_run(loop, AUV_RUN_DEFAULT);
  ASSERT_EQ(NCALLS, received);
  ASSERT_OK(pthread_join(tid, NULL));
  auv_loop_unref(loop);
  CLOSE_LOOP(loop);
}


static int woken;

static void* wake_thread(void* arg) {
  auv_loop_t* loop;

  loop = arg;
  /* Set the flag before waking: the loop sees it after it returns. */
  __atomic_store_n(&woken, 1, __ATOMIC_SEQ_CST);
  ASSERT_OK(auv_loop_wakeup(loop));
  return NULL;
}


TEST_IMPL(threadsafe_wakeup) {
  auv_loop_t* loop;
  pthread_t tid;

  woken = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_loop_wakeup(NULL));
  auv_loop_ref(loop);
  ASSERT_OK(pthread_create(&tid, NULL, wake_thread, loop));
  /* ONCE blocks (kept alive, nothing ready) until the wake-up. */
  while (!__atomic_load_n(&woken, __ATOMIC_SEQ_CST))
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_OK(pthread_join(tid, NULL));
  auv_loop_unref(loop);
  CLOSE_LOOP(loop);
}


static int disposed;

static void dispose_cb(auv_loop_t* loop, void* arg) {
  disposed++;
}


TEST_IMPL(threadsafe_discard) {
  auv_loop_t* loop;

  disposed = 0;
  received = 0;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_loop_call_threadsafe(loop, count_cb, NULL));
  ASSERT_OK(auv_loop_call_threadsafe(loop, count_cb, NULL));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_loop_discard_calls(loop, dispose_cb);
  ASSERT_EQ(2, disposed);
  ASSERT_EQ(0, received);
  CLOSE_LOOP(loop);
}
