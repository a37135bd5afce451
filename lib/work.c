/* Thread-pool work: libuv's pool runs the work, the loop thread runs the
 * completion. */
#include <stdlib.h>

#include "internal.h"

typedef struct {
  uv_work_t req;
  auv_loop_t* loop;
  auv_work_cb work;
  auv_after_work_cb after;
  void* arg;
} auv__work_t;


static void auv__work_run(uv_work_t* req) {
  auv__work_t* w;

  w = (auv__work_t*) req;
  w->work(w->arg);
}


static void auv__work_done(uv_work_t* req, int status) {
  auv__work_t* w;
  auv_loop_t* loop;

  w = (auv__work_t*) req;
  loop = w->loop;
  auv__loop_unblock(loop);
  loop->work_pending--;
  if (w->after != NULL)
    w->after(loop, w->arg, status);
  free(w);
}


int auv_work_queue(auv_loop_t* loop,
                   auv_work_cb work,
                   auv_after_work_cb after,
                   void* arg) {
  auv__work_t* w;
  int err;

  if (loop == NULL || work == NULL)
    return UV_EINVAL;

  w = malloc(sizeof(*w));
  if (w == NULL)
    return UV_ENOMEM;
  w->loop = loop;
  w->work = work;
  w->after = after;
  w->arg = arg;

  err = uv_queue_work(&loop->uv, &w->req, auv__work_run, auv__work_done);
  if (err != 0) {
    free(w);
    return err;
  }
  loop->work_pending++;
  return 0;
}
