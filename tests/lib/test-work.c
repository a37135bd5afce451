#include <pthread.h>

#include <uv.h>

#include "runner.h"

enum { NWORK = 16 };

typedef struct {
  int input;
  int output;
  pthread_t worker;
} job_t;

static pthread_t loop_thread;
static int done;

static void square(void* arg) {
  job_t* job;

  job = arg;
  job->worker = pthread_self();
  job->output = job->input * job->input;
}


static void after_square(auv_loop_t* loop, void* arg, int status) {
  job_t* job;

  job = arg;
  ASSERT_OK(status);
  ASSERT(pthread_equal(pthread_self(), loop_thread));
  ASSERT(!pthread_equal(job->worker, loop_thread));
  ASSERT_EQ(job->input * job->input, job->output);
  done++;
}


TEST_IMPL(work_queue) {
  auv_loop_t* loop;
  job_t jobs[NWORK];
  int i;

  done = 0;
  loop_thread = pthread_self();
  ASSERT_OK(auv_loop_new(&loop));
  for (i = 0; i < NWORK; i++) {
    jobs[i].input = i;
    ASSERT_OK(auv_work_queue(loop, square, after_square, &jobs[i]));
  }
  ASSERT(auv_loop_alive(loop));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(NWORK, done);
  /* No completion callback is fine too. */
  ASSERT_OK(auv_work_queue(loop, square, NULL, &jobs[0]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  CLOSE_LOOP(loop);
}


TEST_IMPL(work_einval) {
  auv_loop_t* loop;

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_work_queue(NULL, square, NULL, NULL));
  ASSERT_EQ(UV_EINVAL, auv_work_queue(loop, NULL, NULL, NULL));
  CLOSE_LOOP(loop);
}
