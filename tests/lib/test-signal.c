#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

typedef struct {
  int calls;
  int signum;
  int closed;
  int close_in_cb;
} sig_t_;


static void on_closed(void* data) {
  ((sig_t_*) data)->closed++;
}


static void on_signal(auv_signal_t* sig, int signum) {
  sig_t_* s;

  s = auv_signal_get_data(sig);
  s->calls++;
  s->signum = signum;
  if (s->close_in_cb)
    auv_signal_close(sig, on_closed);
}


static auv_signal_t* new_sig(auv_loop_t* loop, sig_t_* s) {
  auv_signal_t* sig;

  memset(s, 0, sizeof(*s));
  ASSERT_OK(auv_signal_new(loop, &sig));
  auv_signal_set_data(sig, s);
  ASSERT(auv_signal_get_loop(sig) == loop);
  return sig;
}


TEST_IMPL(signal_delivery) {
  auv_loop_t* loop;
  auv_signal_t* a;
  auv_signal_t* b;
  auv_signal_t* c;
  sig_t_ sa;
  sig_t_ sb;
  sig_t_ sc;

  ASSERT_OK(auv_loop_new(&loop));
  a = new_sig(loop, &sa);
  b = new_sig(loop, &sb);
  c = new_sig(loop, &sc);
  /* An idle watcher neither keeps the loop alive nor watches anything. */
  ASSERT(!auv_loop_alive(loop));
  ASSERT_EQ(0, auv_signal_get_signum(a));
  ASSERT_OK(auv_signal_start(a, SIGUSR1, on_signal));
  ASSERT_OK(auv_signal_start(b, SIGUSR1, on_signal));
  ASSERT_OK(auv_signal_start(c, SIGUSR2, on_signal));
  ASSERT(auv_signal_is_active(a));
  ASSERT_EQ(SIGUSR1, auv_signal_get_signum(a));
  ASSERT(auv_loop_alive(loop));

  /* The handler runs at once, the callbacks wait for the loop. */
  ASSERT_OK(raise(SIGUSR1));
  ASSERT_EQ(0, sa.calls);
  while (sa.calls == 0 || sb.calls == 0)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_EQ(1, sa.calls);
  ASSERT_EQ(SIGUSR1, sa.signum);
  ASSERT_EQ(1, sb.calls);
  ASSERT_EQ(0, sc.calls);

  /* From kill(2), and to a watcher that closes itself. */
  sc.close_in_cb = 1;
  ASSERT_OK(kill(getpid(), SIGUSR2));
  while (sc.closed == 0)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_EQ(1, sc.calls);
  ASSERT_EQ(SIGUSR2, sc.signum);
  ASSERT_EQ(1, sa.calls);

  /* A stopped watcher gets nothing; the other still does. */
  ASSERT_OK(auv_signal_stop(a));
  ASSERT(!auv_signal_is_active(a));
  ASSERT_EQ(0, auv_signal_get_signum(a));
  ASSERT_OK(raise(SIGUSR1));
  while (sb.calls < 2)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_EQ(1, sa.calls);

  /* Started again on another signal. */
  sa.close_in_cb = 1;
  ASSERT_OK(auv_signal_start(a, SIGUSR2, on_signal));
  ASSERT_OK(raise(SIGUSR2));
  while (sa.closed == 0)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_EQ(2, sa.calls);
  ASSERT_EQ(SIGUSR2, sa.signum);
  ASSERT_EQ(2, sb.calls);

  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_signal_close(b, on_closed);
  auv_signal_close(b, on_closed);  /* twice does nothing */
  ASSERT_EQ(UV_EINVAL, auv_signal_start(b, SIGUSR1, on_signal));
  ASSERT_EQ(UV_EINVAL, auv_signal_stop(b));
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, sb.closed);
}


TEST_IMPL(signal_einval) {
  auv_loop_t* loop;
  auv_signal_t* sig;
  sig_t_ s;

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_signal_new(NULL, &sig));
  ASSERT(sig == NULL);
  ASSERT_EQ(UV_EINVAL, auv_signal_new(loop, NULL));
  sig = new_sig(loop, &s);
  ASSERT_EQ(UV_EINVAL, auv_signal_start(NULL, SIGUSR1, on_signal));
  ASSERT_EQ(UV_EINVAL, auv_signal_start(sig, SIGUSR1, NULL));
  ASSERT_EQ(UV_EINVAL, auv_signal_start(sig, 0, on_signal));
  ASSERT_EQ(UV_EINVAL, auv_signal_start(sig, -1, on_signal));
  ASSERT_EQ(UV_EINVAL, auv_signal_start(sig, SIGKILL, on_signal));
  ASSERT_EQ(UV_EINVAL, auv_signal_start(sig, 100000, on_signal));
  ASSERT(!auv_signal_is_active(sig));
  ASSERT_EQ(UV_EINVAL, auv_signal_stop(NULL));
  ASSERT_OK(auv_signal_stop(sig));  /* stopping a stopped watcher */
  ASSERT_EQ(0, auv_signal_is_active(NULL));
  ASSERT_EQ(0, auv_signal_get_signum(NULL));
  ASSERT(auv_signal_get_loop(NULL) == NULL);
  ASSERT(auv_signal_get_data(NULL) == NULL);
  auv_signal_set_data(NULL, NULL);
  auv_signal_close(NULL, NULL);
  auv_signal_close(sig, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, s.closed);
}
