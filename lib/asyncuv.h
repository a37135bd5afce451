/* asyncuv: an event loop engine with asyncio's semantics, on libuv.
 *
 * All functions that can fail return 0 or a negative errno value (libuv's
 * error codes, passed through unchanged); auv_strerror() and auv_err_name()
 * turn them into text.  Objects are opaque; the few that callers allocate
 * themselves (timers) are sized at run time with auv_*_size().  Unless said
 * otherwise a function must be called on the thread that runs the loop.
 * See asyncuv(7) and the man3 pages for the long form.
 */
#ifndef ASYNCUV_H
#define ASYNCUV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>

#include <asyncuv-version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
# define AUV_EXTERN __attribute__((visibility("default")))
#else
# define AUV_EXTERN /* nothing */
#endif

/* libuv's loop type, for callers that also use libuv directly. */
struct uv_loop_s;

typedef struct auv_loop_s auv_loop_t;
typedef struct auv_timer_s auv_timer_t;
typedef struct auv_poll_s auv_poll_t;
typedef struct auv_watch_s auv_watch_t;
typedef struct auv_stream_s auv_stream_t;
typedef struct auv_listener_s auv_listener_t;
typedef struct auv_udp_s auv_udp_t;
typedef struct auv_sendfile_s auv_sendfile_t;
typedef struct auv_process_s auv_process_t;
typedef struct auv_child_watch_s auv_child_watch_t;
typedef struct auv_signal_s auv_signal_t;

/* A buffer to write: the caller's memory, read before the call returns. */
typedef struct {
  const char* base;
  size_t len;
} auv_buf_t;

/* The child's descriptor i is stdio[i] of auv_process_options_t.  For
 * AUV_STDIO_PIPE, auv_process_spawn() stores the parent's end in fd (the
 * writing end for i == 0, the reading end otherwise; non-blocking,
 * close-on-exec, the caller's to close). */
typedef struct {
  int type;
  int fd;
} auv_stdio_t;

/* Options of auv_process_spawn().  Initialise with AUV_PROCESS_OPTIONS_INIT
 * (or zero it and set size): size tells the library which version of the
 * struct the caller was built with, so that fields can be added. */
typedef struct {
  size_t size;                /* sizeof(auv_process_options_t) */
  const char* file;           /* the program; searched in PATH without '/' */
  const char* const* args;    /* argv, NULL-terminated; NULL: { file, NULL } */
  const char* const* env;     /* NULL-terminated; NULL: the parent's */
  const char* cwd;            /* NULL: the parent's */
  unsigned int flags;         /* AUV_PROCESS_SETSID */
  unsigned int stdio_count;
  auv_stdio_t* stdio;         /* stdio_count entries; fds above are inherited
                               * unless close-on-exec */
} auv_process_options_t;

#define AUV_PROCESS_OPTIONS_INIT \
  { sizeof(auv_process_options_t), NULL, NULL, NULL, NULL, 0, 0, NULL }

/* Flags of auv_tcp_listen(). */
enum {
  AUV_TCP_REUSEADDR = 1,
  AUV_TCP_REUSEPORT = 2
};

/* Flags of auv_process_options_t. */
enum {
  AUV_PROCESS_SETSID = 1     /* the child runs in a new session (setsid(2)) */
};

/* What a child's stdio descriptor is (auv_stdio_t.type). */
enum {
  AUV_STDIO_IGNORE = 0,      /* /dev/null for 0, 1 and 2; nothing above */
  AUV_STDIO_INHERIT_FD = 1,  /* a copy of the parent's fd */
  AUV_STDIO_PIPE = 2         /* a new pipe; fd receives the parent's end */
};

/* Events of an fd watcher. */
enum {
  AUV_READABLE = 1,
  AUV_WRITABLE = 2,
  AUV_DISCONNECT = 4
};

typedef enum {
  /* Run until auv_loop_stop() or until nothing is left to do: no queued
   * calls, no timers, no pending work, no active handles, no reference
   * taken with auv_loop_ref(). */
  AUV_RUN_DEFAULT = 0,
  /* Run one iteration: poll for I/O (blocking only when nothing is ready),
   * then run the calls queued before the poll, the I/O callbacks of the
   * poll and the timers due, in that order (asyncio's). */
  AUV_RUN_ONCE,
  /* Run one iteration without blocking. */
  AUV_RUN_NOWAIT
} auv_run_mode;

typedef void (*auv_call_cb)(auv_loop_t* loop, void* arg);
typedef void (*auv_timer_cb)(auv_timer_t* timer);
typedef void (*auv_block_cb)(auv_loop_t* loop, void* arg);
typedef void (*auv_work_cb)(void* arg);
typedef void (*auv_poll_cb)(auv_poll_t* poll, int status, int events);
/* events: the watched directions found ready (AUV_READABLE, AUV_WRITABLE). */
typedef void (*auv_watch_cb)(auv_watch_t* watch, int events);
typedef void (*auv_close_cb)(void* data);
/* Give the memory to read into: at most *len bytes at *base (suggested is
 * a hint).  *len == 0 makes the stream stop reading (UV_ENOBUFS).  Every
 * buffer given comes back to read_cb, unless alloc_cb closes the stream. */
typedef void (*auv_alloc_cb)(auv_stream_t* stream, size_t suggested,
                             char** base, size_t* len);
/* nread > 0: bytes read at base; 0: nothing read after all (base comes
 * back unused); UV_EOF: end of stream; other < 0: error.  After EOF or an
 * error the stream has stopped reading. */
typedef void (*auv_read_cb)(auv_stream_t* stream, ssize_t nread, char* base);
typedef void (*auv_stream_cb)(auv_stream_t* stream, int status);
/* status < 0 (fd -1) reports an accept error; the listener keeps going. */
typedef void (*auv_connection_cb)(auv_listener_t* listener, int status, int fd);
typedef void (*auv_connect_cb)(auv_loop_t* loop, int status, int fd, void* data);
/* res belongs to the callback: free it with auv_freeaddrinfo(). */
typedef void (*auv_getaddrinfo_cb)(auv_loop_t* loop, int status,
                                   struct addrinfo* res, void* data);
typedef void (*auv_getnameinfo_cb)(auv_loop_t* loop, int status,
                                   const char* host, const char* service,
                                   void* data);
typedef void (*auv_after_work_cb)(auv_loop_t* loop, void* arg, int status);
/* Give the memory for one datagram: at most *len bytes at *base (suggested
 * is a hint).  *len == 0 stops receiving (UV_ENOBUFS).  Every buffer given
 * comes back to recv_cb, unless alloc_cb closes the handle. */
typedef void (*auv_udp_alloc_cb)(auv_udp_t* udp, size_t suggested,
                                 char** base, size_t* len);
/* nread >= 0: a datagram of nread bytes at base (0 is an empty datagram),
 * from addr (NULL, addrlen 0, if the sender has no address); UV_EAGAIN:
 * nothing after all (base comes back unused); UV_ENOBUFS: alloc_cb gave no
 * memory, receiving stopped; other < 0: an error (UV_ECONNREFUSED...),
 * receiving goes on. */
typedef void (*auv_udp_recv_cb)(auv_udp_t* udp, ssize_t nread, char* base,
                                const struct sockaddr* addr, socklen_t addrlen);
/* status 0: the send queue is empty; < 0: a queued datagram failed and was
 * dropped, the others still go. */
typedef void (*auv_udp_send_cb)(auv_udp_t* udp, int status);
/* The child exited with exit_status, or was killed by term_signal (then
 * non-zero). */
typedef void (*auv_exit_cb)(auv_process_t* proc, int64_t exit_status,
                            int term_signal);
/* returncode as Python's: the exit status, or -signal if a signal killed
 * the child; 255 if it was not a child of this process or someone else
 * reaped it first (asyncio's convention). */
typedef void (*auv_child_cb)(auv_child_watch_t* w, int pid, int returncode);
typedef void (*auv_signal_cb)(auv_signal_t* sig, int signum);
/* status 0 (done, or in_fd ended first), UV_ECANCELED or an error; sent is
 * the number of bytes written to out_fd in every case. */
typedef void (*auv_sendfile_cb)(auv_sendfile_t* req, int status, uint64_t sent);


/* --- Versions and errors ------------------------------------------------ */

/* End of stream, as a read callback's nread (libuv's UV_EOF).  Every other
 * error code is a negative errno value on Unix (UV_EPIPE == -EPIPE). */
#define AUV_EOF (-4095)

/* The library's version as AUV_VERSION_HEX: (major << 16) | (minor << 8) | patch. */
AUV_EXTERN unsigned int auv_version(void);
/* The library's version as "major.minor.patch"; static storage. */
AUV_EXTERN const char* auv_version_string(void);
/* A message for a negative errno value; valid until the next call on this
 * thread.  Never NULL. */
AUV_EXTERN const char* auv_strerror(int err);
/* The symbolic name of a negative errno value ("ECONNRESET"); valid until
 * the next call on this thread.  Never NULL. */
AUV_EXTERN const char* auv_err_name(int err);


/* --- Loops -------------------------------------------------------------- */

/* Create a loop in *loop.  Returns 0, UV_EINVAL or UV_ENOMEM. */
AUV_EXTERN int auv_loop_new(auv_loop_t** loop);
/* Free a loop.  Returns UV_EBUSY (and frees nothing) while it runs or while
 * calls are queued, timers are active, work or DNS requests are pending or
 * handles (watchers, streams, listeners, connects, datagram handles,
 * sendfile requests, processes, child watches, signal watchers) are open. */
AUV_EXTERN int auv_loop_close(auv_loop_t* loop);
/* Run the loop (see auv_run_mode).  Returns 1 if it still has work to do,
 * 0 if not, UV_EBUSY if it is already running, UV_EINVAL for NULL. */
AUV_EXTERN int auv_loop_run(auv_loop_t* loop, auv_run_mode mode);
/* Make auv_loop_run() return once the current iteration has finished; if
 * the loop is not running, the next auv_loop_run() does one iteration
 * without blocking.  Like asyncio's loop.stop(). */
AUV_EXTERN void auv_loop_stop(auv_loop_t* loop);
/* Make auv_loop_run() return as soon as the running callback returns.
 * Calls and timers not yet run stay queued for the next run.  Meant for
 * callbacks that must unwind (a KeyboardInterrupt in Python). */
AUV_EXTERN void auv_loop_interrupt(auv_loop_t* loop);
/* Non-zero while auv_loop_run() is executing on this loop. */
AUV_EXTERN int auv_loop_is_running(const auv_loop_t* loop);
/* Non-zero if the loop has anything to do (see AUV_RUN_DEFAULT). */
AUV_EXTERN int auv_loop_alive(const auv_loop_t* loop);
/* Keep the loop alive with nothing to do (asyncio's run_forever), so that
 * AUV_RUN_DEFAULT blocks until auv_loop_stop(); counted, undo with unref. */
AUV_EXTERN void auv_loop_ref(auv_loop_t* loop);
AUV_EXTERN void auv_loop_unref(auv_loop_t* loop);
/* The monotonic clock in nanoseconds (CLOCK_MONOTONIC, the clock of Python's
 * time.monotonic()); timer deadlines use it.  Read afresh on every call;
 * loop may be NULL, and any thread may call it. */
AUV_EXTERN uint64_t auv_loop_now(const auv_loop_t* loop);
/* An opaque pointer for the caller. */
AUV_EXTERN void auv_loop_set_data(auv_loop_t* loop, void* data);
AUV_EXTERN void* auv_loop_get_data(const auv_loop_t* loop);
/* The libuv loop underneath, for handles the caller manages with libuv. */
AUV_EXTERN struct uv_loop_s* auv_loop_uv(auv_loop_t* loop);
/* Call before(loop, arg) when the loop is about to block waiting for I/O
 * and after(loop, arg) before the next callback runs once it wakes.  An
 * embedder uses them to release and retake a lock (Python's GIL).  Pass
 * NULL hooks to remove them. */
AUV_EXTERN int auv_loop_set_block_hooks(auv_loop_t* loop,
                                        auv_block_cb before,
                                        auv_block_cb after,
                                        void* arg);


/* --- Calls: the ready queue ---------------------------------------------- */

/* Queue cb(loop, arg) to run in this or the next iteration, in FIFO order.
 * What is queued while the queue runs waits for the next iteration.
 * Returns 0, UV_EINVAL or UV_ENOMEM. */
AUV_EXTERN int auv_loop_call_soon(auv_loop_t* loop, auv_call_cb cb, void* arg);
/* The number of queued calls. */
AUV_EXTERN size_t auv_loop_ready_count(const auv_loop_t* loop);
/* Remove every queued call (including those queued with
 * auv_loop_call_threadsafe()), passing each arg to dispose(loop, arg)
 * instead of running it; dispose may be NULL. */
AUV_EXTERN void auv_loop_discard_calls(auv_loop_t* loop, auv_call_cb dispose);
/* Call visit(cb, arg, ctx) for every queued call, oldest first, without
 * removing it; stops at and returns the first non-zero result.  Lets an
 * owner of the args find them (a garbage collector's traversal). */
AUV_EXTERN int auv_loop_walk_calls(const auv_loop_t* loop,
                                   int (*visit)(auv_call_cb cb, void* arg, void* ctx),
                                   void* ctx);
/* Thread-safe: queue cb(loop, arg) from any thread and wake the loop. */
AUV_EXTERN int auv_loop_call_threadsafe(auv_loop_t* loop,
                                        auv_call_cb cb,
                                        void* arg);
/* Thread-safe: wake the loop if it is blocked waiting for I/O. */
AUV_EXTERN int auv_loop_wakeup(auv_loop_t* loop);


/* --- Timers --------------------------------------------------------------- */

/* Bytes to allocate for an auv_timer_t (pointer-aligned memory). */
AUV_EXTERN size_t auv_timer_size(void);
/* Initialise caller-allocated timer memory.  A timer holds no resource but
 * its place in the loop's heap: once stopped, its memory may be freed. */
AUV_EXTERN int auv_timer_init(auv_loop_t* loop, auv_timer_t* timer);
/* Fire cb(timer) once, at the first iteration after the absolute deadline
 * (auv_loop_now() units).  Timers fire in deadline order, ties in the order
 * they were started; a started timer is moved to the new deadline. */
AUV_EXTERN int auv_timer_start(auv_timer_t* timer,
                               auv_timer_cb cb,
                               uint64_t deadline);
/* Move a timer to a new deadline, keeping its callback; starts it if it
 * was stopped.  UV_EINVAL if it was never started. */
AUV_EXTERN int auv_timer_restart(auv_timer_t* timer, uint64_t deadline);
/* Stop a timer (O(log n)); stopping a stopped timer is a no-op. */
AUV_EXTERN int auv_timer_stop(auv_timer_t* timer);
/* Non-zero if the timer is started and has not fired yet. */
AUV_EXTERN int auv_timer_is_active(const auv_timer_t* timer);
AUV_EXTERN uint64_t auv_timer_get_deadline(const auv_timer_t* timer);
AUV_EXTERN auv_loop_t* auv_timer_get_loop(const auv_timer_t* timer);
AUV_EXTERN void auv_timer_set_data(auv_timer_t* timer, void* data);
AUV_EXTERN void* auv_timer_get_data(const auv_timer_t* timer);
/* The number of active timers, and the one due first (NULL if none):
 * with auv_timer_stop() this lets an owner release every timer at close. */
AUV_EXTERN size_t auv_loop_timer_count(const auv_loop_t* loop);
AUV_EXTERN auv_timer_t* auv_loop_next_timer(const auv_loop_t* loop);
/* Call visit(timer, ctx) for every active timer, in no particular order;
 * stops at and returns the first non-zero result.  visit must not start or
 * stop timers. */
AUV_EXTERN int auv_loop_walk_timers(const auv_loop_t* loop,
                                    int (*visit)(auv_timer_t* timer, void* ctx),
                                    void* ctx);
/* The callback a timer was started with (NULL if never started). */
AUV_EXTERN auv_timer_cb auv_timer_get_cb(const auv_timer_t* timer);


/* --- Fd watchers ---------------------------------------------------------- */

/* Create a watcher of fd's readiness (the caller keeps owning fd, which
 * must stay open until the watcher is closed).  Returns 0, UV_EINVAL,
 * UV_ENOMEM, or the error of registering fd (UV_EPERM for a regular file,
 * UV_EEXIST if another watcher of this loop has fd). */
AUV_EXTERN int auv_poll_new(auv_loop_t* loop, int fd, auv_poll_t** poll);
/* Call cb(poll, status, events) whenever fd is ready for one of events
 * (AUV_READABLE | AUV_WRITABLE | AUV_DISCONNECT), level-triggered; status
 * is 0 or a negative errno with events 0.  Calling it again changes the
 * events and callback. */
AUV_EXTERN int auv_poll_start(auv_poll_t* poll, int events, auv_poll_cb cb);
/* Stop watching; the watcher can be started again.  After
 * auv_poll_close(), start and stop return UV_EINVAL. */
AUV_EXTERN int auv_poll_stop(auv_poll_t* poll);
/* Stop and free the watcher; close_cb(data), if not NULL, runs on the loop
 * thread once the memory is released.  The fd is not closed. */
AUV_EXTERN void auv_poll_close(auv_poll_t* poll, auv_close_cb close_cb);
AUV_EXTERN int auv_poll_get_fd(const auv_poll_t* poll);
AUV_EXTERN auv_loop_t* auv_poll_get_loop(const auv_poll_t* poll);
AUV_EXTERN void auv_poll_set_data(auv_poll_t* poll, void* data);
AUV_EXTERN void* auv_poll_get_data(const auv_poll_t* poll);


/* --- The watcher set ---------------------------------------------------------
 * Many fds watched cheaply (asyncio's add_reader()/add_writer()): a loop's
 * started watchers share one level-triggered epoll set of the loop's own,
 * read during the loop's poll.  Starting or stopping is one epoll_ctl();
 * the fd's blocking mode is left alone.  The caller keeps owning fd (stop
 * or free the watcher before closing it).  Since 0.2.0 (ASYNCUV_1.1). */

/* Allocate a stopped watcher of fd that will call cb; no system call.
 * Returns 0, UV_EINVAL or UV_ENOMEM. */
AUV_EXTERN int auv_watch_new(auv_loop_t* loop, int fd, auv_watch_cb cb,
                             auv_watch_t** watch);
/* Also watch for events (AUV_READABLE | AUV_WRITABLE); what the last poll
 * found for them and has not yet run is dropped.  Returns 0, UV_EINVAL,
 * UV_EBADF, UV_EPERM (a regular file), UV_EEXIST (another started watcher
 * of this loop has fd) or UV_ENOMEM. */
AUV_EXTERN int auv_watch_start(auv_watch_t* watch, int events);
/* Stop watching for events, dropping what the last poll found for them.
 * Returns 0 or UV_EINVAL. */
AUV_EXTERN int auv_watch_stop(auv_watch_t* watch, int events);
/* Stop and free the watcher now (also from any callback, its own
 * included); fd is not closed. */
AUV_EXTERN void auv_watch_free(auv_watch_t* watch);
/* The events being watched (0: stopped). */
AUV_EXTERN int auv_watch_get_events(const auv_watch_t* watch);
AUV_EXTERN int auv_watch_get_fd(const auv_watch_t* watch);
AUV_EXTERN auv_loop_t* auv_watch_get_loop(const auv_watch_t* watch);
AUV_EXTERN void auv_watch_set_data(auv_watch_t* watch, void* data);
AUV_EXTERN void* auv_watch_get_data(const auv_watch_t* watch);


/* --- Streams ----------------------------------------------------------------
 * Buffered I/O on a caller's connected fd (TCP or Unix socket, pipe, tty).
 * The caller keeps owning the fd (it must stay open until the stream is
 * closed); the stream makes it non-blocking. */

/* Returns 0, UV_EINVAL, UV_ENOMEM or the error of registering fd (as
 * auv_poll_new()). */
AUV_EXTERN int auv_stream_new(auv_loop_t* loop, int fd, auv_stream_t** stream);
/* Read whenever data comes: alloc_cb gives the memory, read_cb gets it.
 * Up to 32 reads per wake-up, fewer if read_cb stops the stream. */
AUV_EXTERN int auv_stream_read_start(auv_stream_t* stream,
                                     auv_alloc_cb alloc_cb,
                                     auv_read_cb read_cb);
AUV_EXTERN int auv_stream_read_stop(auv_stream_t* stream);
AUV_EXTERN int auv_stream_is_reading(const auv_stream_t* stream);
/* Write bufs in order: as much as the fd takes at once (one writev() when
 * nothing is queued), the rest copied to the stream's queue and written as
 * the fd allows.  Returns the bytes written at once (>= 0), or a negative
 * errno with nothing queued (UV_EPIPE after a shutdown or a write error). */
AUV_EXTERN ssize_t auv_stream_write(auv_stream_t* stream,
                                    const auv_buf_t bufs[],
                                    unsigned int nbufs);
/* Bytes queued, not yet written. */
AUV_EXTERN size_t auv_stream_write_queue_size(const auv_stream_t* stream);
/* cb(stream, 0) each time the queue empties; cb(stream, err) when writing
 * it failed (the queue is dropped, later writes fail with UV_EPIPE). */
AUV_EXTERN void auv_stream_set_drain_cb(auv_stream_t* stream, auv_stream_cb cb);
/* Half-close: once the queue is written, shutdown(fd, SHUT_WR), then
 * cb(stream, status) (cb may be NULL) on a later iteration, never inside
 * this call.  Writes fail with UV_EPIPE after; a second shutdown fails with
 * UV_ENOTCONN.  A pipe or tty has no half-close: it only stops writing. */
AUV_EXTERN int auv_stream_shutdown(auv_stream_t* stream, auv_stream_cb cb);
/* Call cb(stream, 0) once, from the loop, when the fd is writable with
 * nothing queued: for writes made outside the stream, such as sendfile(2)
 * (after an fd error too: that write meets the error).  One waiter at a
 * time (UV_EBUSY); cb NULL cancels.  Returns 0, UV_EINVAL or UV_EBUSY. */
AUV_EXTERN int auv_stream_wait_writable(auv_stream_t* stream, auv_stream_cb cb);
/* Stop and free the stream, dropping what is queued (no drain or shutdown
 * callback follows); close_cb(data) runs on the loop thread once the memory
 * is released.  The fd is not closed; the caller may close it as soon as
 * this returns. */
AUV_EXTERN void auv_stream_close(auv_stream_t* stream, auv_close_cb close_cb);
AUV_EXTERN int auv_stream_get_fd(const auv_stream_t* stream);
AUV_EXTERN auv_loop_t* auv_stream_get_loop(const auv_stream_t* stream);
AUV_EXTERN void auv_stream_set_data(auv_stream_t* stream, void* data);
AUV_EXTERN void* auv_stream_get_data(const auv_stream_t* stream);


/* --- Listeners and TCP ---------------------------------------------------- */

/* Accept connections on a caller's listening socket fd (the caller keeps
 * owning it).  Each accepted fd (non-blocking, close-on-exec) goes to cb,
 * which owns it. */
AUV_EXTERN int auv_listener_new(auv_loop_t* loop, int fd, auv_listener_t** listener);
AUV_EXTERN int auv_listener_start(auv_listener_t* listener, auv_connection_cb cb);
AUV_EXTERN int auv_listener_stop(auv_listener_t* listener);
AUV_EXTERN void auv_listener_close(auv_listener_t* listener, auv_close_cb close_cb);
AUV_EXTERN int auv_listener_get_fd(const auv_listener_t* listener);
AUV_EXTERN void auv_listener_set_data(auv_listener_t* listener, void* data);
AUV_EXTERN void* auv_listener_get_data(const auv_listener_t* listener);
/* A non-blocking TCP socket bound to addr and listening, in *fd (the
 * caller owns it).  flags: AUV_TCP_REUSEADDR, AUV_TCP_REUSEPORT. */
AUV_EXTERN int auv_tcp_listen(const struct sockaddr* addr, int backlog,
                              unsigned int flags, int* fd);
/* Connect a new non-blocking TCP socket to addr; cb(loop, status, fd, data)
 * gets the connected fd (the callback owns it) or status < 0 and fd -1, on
 * a later iteration.  Errors creating the socket are returned at once. */
AUV_EXTERN int auv_tcp_connect(auv_loop_t* loop, const struct sockaddr* addr,
                               auv_connect_cb cb, void* data);
/* Turn Nagle's algorithm off (enable != 0: TCP_NODELAY) or back on. */
AUV_EXTERN int auv_tcp_nodelay(int fd, int enable);
/* TCP keep-alive, probes after delay seconds idle (0: the system's). */
AUV_EXTERN int auv_tcp_keepalive(int fd, int enable, unsigned int delay);


/* --- Datagram sockets ------------------------------------------------------
 * Datagrams on a caller's SOCK_DGRAM socket of any family (AF_INET,
 * AF_INET6, AF_UNIX), or on a SOCK_SEQPACKET or SOCK_RAW socket.  The caller keeps owning the fd (it must stay open
 * until the handle is closed); the handle makes it non-blocking. */

/* Returns 0, UV_EINVAL (also for a stream socket),
 * UV_ENOTSOCK, UV_ENOMEM or the error of registering fd (as auv_poll_new()). */
AUV_EXTERN int auv_udp_new(auv_loop_t* loop, int fd, auv_udp_t** udp);
/* Receive datagrams whenever they come, up to 32 per wake-up (one while
 * they come one at a time): alloc_cb gives the memory for each, recv_cb
 * gets it.  Errors do not stop it. */
AUV_EXTERN int auv_udp_recv_start(auv_udp_t* udp,
                                  auv_udp_alloc_cb alloc_cb,
                                  auv_udp_recv_cb recv_cb);
AUV_EXTERN int auv_udp_recv_stop(auv_udp_t* udp);
AUV_EXTERN int auv_udp_is_receiving(const auv_udp_t* udp);
/* Send bufs as one datagram to addr (NULL: the connected peer).  Returns 1
 * if it went out at once, 0 if it was copied to the send queue (the socket
 * had no room, or datagrams were already queued), or a negative errno with
 * nothing queued (UV_EMSGSIZE, UV_ECONNREFUSED...). */
AUV_EXTERN int auv_udp_send(auv_udp_t* udp,
                            const auv_buf_t bufs[],
                            unsigned int nbufs,
                            const struct sockaddr* addr,
                            socklen_t addrlen);
/* Bytes, and datagrams, in the send queue. */
AUV_EXTERN size_t auv_udp_send_queue_size(const auv_udp_t* udp);
AUV_EXTERN size_t auv_udp_send_queue_count(const auv_udp_t* udp);
/* cb(udp, 0) each time the send queue empties; cb(udp, err) for each
 * queued datagram that failed (it is dropped, the queue goes on). */
AUV_EXTERN void auv_udp_set_send_cb(auv_udp_t* udp, auv_udp_send_cb cb);
/* connect(2) the socket to addr; addr NULL dissolves the association. */
AUV_EXTERN int auv_udp_connect(auv_udp_t* udp, const struct sockaddr* addr,
                               socklen_t addrlen);
/* SO_BROADCAST on (on != 0) or off. */
AUV_EXTERN int auv_udp_set_broadcast(auv_udp_t* udp, int on);
/* Stop and free the handle, dropping the send queue (no send callback
 * follows); close_cb(data) runs on the loop thread once the memory is
 * released.  The fd is not closed; the caller may close it at once. */
AUV_EXTERN void auv_udp_close(auv_udp_t* udp, auv_close_cb close_cb);
AUV_EXTERN int auv_udp_get_fd(const auv_udp_t* udp);
AUV_EXTERN auv_loop_t* auv_udp_get_loop(const auv_udp_t* udp);
AUV_EXTERN void auv_udp_set_data(auv_udp_t* udp, void* data);
AUV_EXTERN void* auv_udp_get_data(const auv_udp_t* udp);


/* --- Sendfile ------------------------------------------------------------ */

/* Send count bytes (0: up to the end) of in_fd from offset (< 0: from its
 * file position, which then advances) to out_fd, a socket or pipe made
 * non-blocking, as it becomes writable: sendfile(2), or read and write
 * where the kernel cannot splice the pair.  cb(req, status, sent) runs
 * once, on the loop thread, never inside this call; req is valid until cb
 * returns.  No other watcher of out_fd may be started on the loop
 * meanwhile (UV_EEXIST if one is at start).  The fds stay the caller's. */
AUV_EXTERN int auv_sendfile_start(auv_loop_t* loop, int out_fd, int in_fd,
                                  int64_t offset, uint64_t count,
                                  auv_sendfile_cb cb, auv_sendfile_t** req);
/* Stop sending: cb gets UV_ECANCELED and the bytes sent so far, on a later
 * step of the loop.  UV_EBUSY if the request has already finished (cb is
 * pending with its own status). */
AUV_EXTERN int auv_sendfile_cancel(auv_sendfile_t* req);
/* auv_sendfile_start_ex() and auv_stream_sendfile() flags. */
enum {
  /* Fail with the error of a first sendfile(2) that sent nothing (EINVAL,
   * ENOSYS, EOPNOTSUPP: the pair cannot be spliced) instead of falling
   * back to reads and writes: the caller has a fallback of its own. */
  AUV_SENDFILE_NO_FALLBACK = 1,
  /* auv_sendfile_start_ex() only: if out_fd was blocking, make it blocking
   * again when the request finishes or is cancelled (before cb).  Since
   * 0.2.0. */
  AUV_SENDFILE_RESTORE_BLOCKING = 2
};
/* As auv_sendfile_start(), with flags (0 or more AUV_SENDFILE_*; UV_EINVAL
 * for others).  Since 0.2.0 (ASYNCUV_1.1). */
AUV_EXTERN int auv_sendfile_start_ex(auv_loop_t* loop, int out_fd, int in_fd,
                                     int64_t offset, uint64_t count,
                                     unsigned int flags, auv_sendfile_cb cb,
                                     auv_sendfile_t** req);
/* As auv_sendfile_start(), to a stream's fd, woken by the stream's own
 * writability (flags: AUV_SENDFILE_NO_FALLBACK or 0): its write queue must
 * be empty (UV_EBUSY), and writes fail with UV_EBUSY until cb.  Closing the stream cancels the request.  cb
 * runs in the loop's I/O step that finishes the request, or on a later
 * step after auv_sendfile_cancel().  Since 0.2.0 (ASYNCUV_1.1). */
AUV_EXTERN int auv_stream_sendfile(auv_stream_t* stream, int in_fd,
                                   int64_t offset, uint64_t count,
                                   unsigned int flags, auv_sendfile_cb cb,
                                   auv_sendfile_t** req);
/* The bytes sent so far (valid until cb returns).  Since 0.2.0. */
AUV_EXTERN uint64_t auv_sendfile_get_sent(const auv_sendfile_t* req);
AUV_EXTERN void auv_sendfile_set_data(auv_sendfile_t* req, void* data);
AUV_EXTERN void* auv_sendfile_get_data(const auv_sendfile_t* req);


/* --- Processes ----------------------------------------------------------- */

/* Spawn a child (libuv's uv_spawn()); exit_cb (may be NULL) runs on the
 * loop thread when it has exited and been reaped.  On failure no process
 * and no pipe exists (UV_ENOENT, UV_EACCES..., UV_EINVAL for bad options,
 * UV_ENOTSUP for fields of a later version of the options struct). */
AUV_EXTERN int auv_process_spawn(auv_loop_t* loop,
                                 const auv_process_options_t* options,
                                 auv_exit_cb exit_cb,
                                 auv_process_t** proc);
/* Send signum to the child; UV_ESRCH once it has exited. */
AUV_EXTERN int auv_process_kill(auv_process_t* proc, int signum);
AUV_EXTERN int auv_process_get_pid(const auv_process_t* proc);
/* Free the handle (exit_cb will not run any more); close_cb(data) runs on
 * the loop thread once the memory is released.  A child still running is
 * neither killed nor reaped by the library after this. */
AUV_EXTERN void auv_process_close(auv_process_t* proc, auv_close_cb close_cb);
AUV_EXTERN auv_loop_t* auv_process_get_loop(const auv_process_t* proc);
AUV_EXTERN void auv_process_set_data(auv_process_t* proc, void* data);
AUV_EXTERN void* auv_process_get_data(const auv_process_t* proc);

/* Watch for the exit of child pid, spawned by anyone (fork(), Python's
 * subprocess): cb(w, pid, returncode) runs once on the loop thread when it
 * has exited, after reaping it.  No other process is ever waited for. */
AUV_EXTERN int auv_child_watch_start(auv_loop_t* loop, int pid,
                                     auv_child_cb cb,
                                     auv_child_watch_t** w);
/* Stop watching and free the watch (also needed after cb); close_cb(data)
 * runs on the loop thread once the memory is released. */
AUV_EXTERN void auv_child_watch_close(auv_child_watch_t* w, auv_close_cb close_cb);
/* auv_child_watch_close(), and a child that has not exited yet is reaped
 * when it does by a thread of the library's (cb is not called): for a loop
 * that closes while its children run.  0, or a negative errno if no thread
 * could start (the watch is closed all the same); UV_EINVAL if w is NULL
 * or closed. */
AUV_EXTERN int auv_child_watch_detach(auv_child_watch_t* w, auv_close_cb close_cb);
AUV_EXTERN int auv_child_watch_get_pid(const auv_child_watch_t* w);
/* Non-zero until cb has run or the watch is closed. */
AUV_EXTERN int auv_child_watch_is_active(const auv_child_watch_t* w);
AUV_EXTERN void auv_child_watch_set_data(auv_child_watch_t* w, void* data);
AUV_EXTERN void* auv_child_watch_get_data(const auv_child_watch_t* w);


/* --- Signals ------------------------------------------------------------- */

/* A signal watcher (libuv's uv_signal_t): its callback runs on the loop
 * thread, in the poll step, after the signal arrived in any thread. */
AUV_EXTERN int auv_signal_new(auv_loop_t* loop, auv_signal_t** sig);
/* Call cb(sig, signum) each time signum arrives (libuv installs its own
 * handler for it); calling it again changes the signal and callback.  A
 * started watcher keeps the loop alive.  UV_EINVAL for SIGKILL, SIGSTOP. */
AUV_EXTERN int auv_signal_start(auv_signal_t* sig, int signum, auv_signal_cb cb);
/* Stop watching; once no watcher of any loop watches signum, its
 * disposition is the default again. */
AUV_EXTERN int auv_signal_stop(auv_signal_t* sig);
AUV_EXTERN int auv_signal_is_active(const auv_signal_t* sig);
/* Stop and free the watcher; close_cb(data) runs on the loop thread once
 * the memory is released. */
AUV_EXTERN void auv_signal_close(auv_signal_t* sig, auv_close_cb close_cb);
/* The signal watched, 0 when stopped. */
AUV_EXTERN int auv_signal_get_signum(const auv_signal_t* sig);
AUV_EXTERN auv_loop_t* auv_signal_get_loop(const auv_signal_t* sig);
AUV_EXTERN void auv_signal_set_data(auv_signal_t* sig, void* data);
AUV_EXTERN void* auv_signal_get_data(const auv_signal_t* sig);


/* --- DNS, on the thread pool ---------------------------------------------- */

/* getaddrinfo(3) on libuv's thread pool; cb(loop, status, res, data) on the
 * loop thread, status 0 or UV_EAI_* (res NULL).  node or service may be
 * NULL, not both; hints may be NULL. */
AUV_EXTERN int auv_getaddrinfo(auv_loop_t* loop, const char* node,
                               const char* service,
                               const struct addrinfo* hints,
                               auv_getaddrinfo_cb cb, void* data);
/* Free a result of auv_getaddrinfo(); NULL is a no-op. */
AUV_EXTERN void auv_freeaddrinfo(struct addrinfo* res);
/* getnameinfo(3) of an AF_INET or AF_INET6 addr on the thread pool; host
 * and service (NULL on error) are valid during the callback only. */
AUV_EXTERN int auv_getnameinfo(auv_loop_t* loop, const struct sockaddr* addr,
                               int flags, auv_getnameinfo_cb cb, void* data);


/* --- Thread-pool work -------------------------------------------------- */

/* Run work(arg) on libuv's thread pool, then after(loop, arg, status) on
 * the loop thread with status 0.  after may be NULL.  Pending work keeps
 * auv_loop_close() from closing the loop.  Returns 0, UV_EINVAL or
 * UV_ENOMEM. */
AUV_EXTERN int auv_work_queue(auv_loop_t* loop,
                              auv_work_cb work,
                              auv_after_work_cb after,
                              void* arg);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCUV_H */
