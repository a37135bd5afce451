#ifndef AUV_TEST_LIST_H
#define AUV_TEST_LIST_H

#define AUV_TEST_LIST(X)                                                \
  X(version)                                                            \
  X(strerror)                                                           \
  X(loop_new_close)                                                     \
  X(loop_run_empty)                                                     \
  X(loop_call_soon_fifo)                                                \
  X(loop_call_soon_next_iteration)                                      \
  X(loop_ring_growth)                                                   \
  X(loop_stop)                                                          \
  X(loop_stop_before_run)                                               \
  X(loop_interrupt)                                                     \
  X(loop_reentrant_run)                                                 \
  X(loop_close_busy)                                                    \
  X(loop_block_hooks)                                                   \
  X(loop_discard_during_run)                                            \
  X(loop_data)                                                          \
  X(timer_order)                                                        \
  X(timer_ties_in_start_order)                                          \
  X(timer_stop)                                                         \
  X(timer_restart)                                                      \
  X(timer_many_cancel)                                                  \
  X(timer_after_queued_calls)                                           \
  X(timer_started_during_iteration_waits)                               \
  X(timer_stop_due)                                                     \
  X(timer_deadline_respected)                                           \
  X(timer_next_timer)                                                   \
  X(timer_einval)                                                        \
  X(timer_due_with_keepalive)                                           \
  X(threadsafe_calls)                                                   \
  X(threadsafe_wakeup)                                                  \
  X(threadsafe_discard)                                                 \
  X(work_queue)                                                         \
  X(poll_readable)                                                       \
  X(poll_writable_and_close_in_callback)                                \
  X(poll_einval)                                                        \
  X(work_einval)

#endif /* AUV_TEST_LIST_H */
