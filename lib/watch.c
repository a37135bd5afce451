/* The watcher set: readiness of many of a caller's fds, cheaply.
 *
 * The started watchers of a loop share one epoll set of the loop's own,
 * level-triggered, watched by a single libuv poll on the set's fd.  Starting
 * or stopping a watcher is one epoll_ctl() on that set, as with asyncio's
 * selector, and the fd's blocking mode is left alone; a libuv poll handle
 * per fd (auv_poll_t, poll.c) costs an ioctl and several epoll_ctl() calls
 * for each start/stop cycle and makes the fd non-blocking.
 *
 * When libuv's poll (step 1 of an iteration, loop.c) finds the set
 * readable, its callback reads the set at once, without blocking, and
 * records what each watcher found (auv__rec_t); the loop runs the
 * callbacks in its I/O step, after the calls queued before the poll, which
 * is where asyncio's selector loop runs them.  Restarting or stopping a
 * direction drops what the poll found for it, as asyncio's add_reader()
 * and remove_reader() cancel a handle already in the ready queue.
 *
 * The set's entries name their watcher by slot and generation, not by
 * pointer: an fd closed without stopping its watcher stays in the set if
 * another descriptor shares its open file, and what it reports after the
 * watcher is gone must find nothing.
 *
 * The Python module's add_reader(), add_writer() and the sock_*() methods
 * that wait are built on these (module/fdwatch.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

/* Events taken from the set per poll; the rest (level-triggered) are
 * reported again by the next one. */
#define AUV__WS_BATCH 128

struct auv__ws_slot_s {
  auv_watch_t* watch;         /* NULL: free */
  uint32_t gen;               /* bumped at each reuse */
  uint32_t next_free;
};

struct auv_watch_s {
  auv__rec_t rec;             /* first: what the poll found (internal.h) */
  auv_loop_t* loop;
  auv_watch_cb cb;
  void* data;
  int fd;
  int events;                 /* in the set; 0: not in it */
  uint32_t slot;              /* while in the set */
};


/* Which of the watched directions an epoll event wakes.  As
 * selectors.EpollSelector: an error or hang-up wakes both, and the
 * caller's own read or write then sees it. */
static int auv__watch_ready(uint32_t ev, int watched) {
  int ready;

  ready = 0;
  if ((ev & ~(uint32_t) EPOLLOUT) && (watched & AUV_READABLE))
    ready |= AUV_READABLE;
  if ((ev & ~(uint32_t) EPOLLIN) && (watched & AUV_WRITABLE))
    ready |= AUV_WRITABLE;
  return ready;
}


static void auv__watch_record(auv_watch_t* w, int events) {
  /* Out of memory: not recorded, but the set stays readable (level-
   * triggered), so the next poll reports it again. */
  if (events != 0)
    (void) auv__rec_push(w->loop, &w->rec, 0, events);
}


/* libuv found the set readable: read it now, during the poll. */
static void auv__ws_poll_cb(uv_poll_t* handle, int status, int events) {
  struct epoll_event ev[AUV__WS_BATCH];
  struct auv__ws_slot_s* s;
  auv_loop_t* loop;
  auv_watch_t* w;
  uint32_t slot;
  int n;
  int i;

  loop = handle->loop->data;
  if (status < 0) {
    /* libuv stopped the poll; an epoll fd has no error to report. */
    (void) uv_poll_start(handle, UV_READABLE, auv__ws_poll_cb);
    return;
  }
  /* One watcher in the set, watching one way (a pipe's reader): the set is
   * readable only while one of its fds is (the kernel checks them when the
   * set is polled), so that fd is the ready one, and nothing has changed
   * the set since libuv's poll returned: no need to ask epoll_wait(). */
  if (loop->ws_count == 1) {
    w = loop->ws_slots[loop->ws_slot_sum].watch;
    if (w != NULL && (w->events == AUV_READABLE || w->events == AUV_WRITABLE)) {
      auv__watch_record(w, w->events);
      return;
    }
  }
  do
    n = epoll_wait(loop->ws_fd, ev, AUV__WS_BATCH, 0);
  while (n < 0 && errno == EINTR);
  for (i = 0; i < n; i++) {
    slot = (uint32_t) ev[i].data.u64;
    if (slot >= loop->ws_nslots)
      continue;
    s = &loop->ws_slots[slot];
    if (s->watch == NULL || s->gen != (uint32_t) (ev[i].data.u64 >> 32))
      continue;  /* left behind by a watcher whose fd was closed */
    auv__watch_record(s->watch, auv__watch_ready(ev[i].events, s->watch->events));
  }
}


static void auv__watch_rec_run(auv__rec_t* rec, int status, int events) {
  auv_watch_t* w;

  w = (auv_watch_t*) rec;
  events &= w->events;
  if (events != 0)
    w->cb(w, events);
}


/* The set and its libuv poll, made with the loop (its fds are all there
 * from the start: a program that counts its fds sees none appear). */
int auv__watch_set_open(auv_loop_t* loop) {
  int err;
  int fd;

  fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0)
    return -errno;
  err = uv_poll_init(&loop->uv, &loop->ws_poll, fd);
  if (err == 0) {
    err = uv_poll_start(&loop->ws_poll, UV_READABLE, auv__ws_poll_cb);
    if (err != 0)
      uv_close((uv_handle_t*) &loop->ws_poll, NULL);
  }
  if (err != 0) {
    close(fd);
    return err;
  }
  /* Started watchers keep the loop alive, not the set. */
  uv_unref((uv_handle_t*) &loop->ws_poll);
  loop->ws_fd = fd;
  return 0;
}


/* At auv_loop_close(), once every watcher is freed. */
void auv__watch_set_close(auv_loop_t* loop) {
  if (loop->ws_fd >= 0) {
    uv_close((uv_handle_t*) &loop->ws_poll, NULL);  /* leaves libuv's set now */
    close(loop->ws_fd);
    loop->ws_fd = -1;
  }
  free(loop->ws_slots);
  loop->ws_slots = NULL;
  loop->ws_nslots = 0;
}


static int auv__ws_slot_take(auv_loop_t* loop, auv_watch_t* w) {
  struct auv__ws_slot_s* slots;
  uint32_t n;
  uint32_t i;

  if (loop->ws_free == loop->ws_nslots) {
    n = loop->ws_nslots == 0 ? 16 : loop->ws_nslots * 2;
    if (n <= loop->ws_nslots)
      return UV_ENOMEM;
    slots = realloc(loop->ws_slots, n * sizeof(*slots));
    if (slots == NULL)
      return UV_ENOMEM;
    for (i = loop->ws_nslots; i < n; i++) {
      slots[i].watch = NULL;
      slots[i].gen = 0;
      slots[i].next_free = i + 1;
    }
    loop->ws_slots = slots;
    loop->ws_free = loop->ws_nslots;
    loop->ws_nslots = n;
  }
  w->slot = loop->ws_free;
  loop->ws_free = loop->ws_slots[w->slot].next_free;
  loop->ws_slots[w->slot].watch = w;
  loop->ws_slots[w->slot].gen++;
  return 0;
}


static void auv__ws_slot_give(auv_loop_t* loop, auv_watch_t* w) {
  loop->ws_slots[w->slot].watch = NULL;
  loop->ws_slots[w->slot].next_free = loop->ws_free;
  loop->ws_free = w->slot;
}


static int auv__epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  int r;

  do
    r = epoll_ctl(epfd, op, fd, ev);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}


/* Another started watcher of this loop on fd (only asked after EEXIST). */
static int auv__ws_has_fd(auv_loop_t* loop, auv_watch_t* self) {
  uint32_t i;

  for (i = 0; i < loop->ws_nslots; i++)
    if (loop->ws_slots[i].watch != NULL && loop->ws_slots[i].watch != self &&
        loop->ws_slots[i].watch->fd == self->fd)
      return 1;
  return 0;
}


/* Bring the set in line with want: one epoll_ctl(), none if unchanged. */
static int auv__watch_set(auv_watch_t* w, int want) {
  struct epoll_event ev;
  auv_loop_t* loop;
  int err;

  if (want == w->events)
    return 0;
  loop = w->loop;
  memset(&ev, 0, sizeof(ev));
  ev.events = ((want & AUV_READABLE) ? (uint32_t) EPOLLIN : 0) |
              ((want & AUV_WRITABLE) ? (uint32_t) EPOLLOUT : 0);

  if (want == 0) {
    /* ENOENT, EBADF: the fd was closed under the watcher, and its entry
     * with it (unless another descriptor shares the file: then it stays,
     * and its slot's new generation makes it report nothing). */
    (void) auv__epoll_ctl(loop->ws_fd, EPOLL_CTL_DEL, w->fd, &ev);
    auv__ws_slot_give(loop, w);
    w->events = 0;
    loop->ws_slot_sum -= w->slot;
    if (--loop->ws_count == 0)
      uv_unref((uv_handle_t*) &loop->ws_poll);
    return 0;
  }

  if (w->events == 0) {
    err = auv__ws_slot_take(loop, w);
    if (err != 0)
      return err;
    ev.data.u64 = ((uint64_t) loop->ws_slots[w->slot].gen << 32) | w->slot;
    err = auv__epoll_ctl(loop->ws_fd, EPOLL_CTL_ADD, w->fd, &ev);
    /* The file is in the set already: another watcher's, or left behind
     * by a watcher whose fd was closed (and the file kept open by another
     * descriptor), which this one takes over. */
    if (err == UV_EEXIST && !auv__ws_has_fd(loop, w))
      err = auv__epoll_ctl(loop->ws_fd, EPOLL_CTL_MOD, w->fd, &ev);
    if (err != 0) {
      auv__ws_slot_give(loop, w);
      return err;
    }
    if (loop->ws_count++ == 0)
      uv_ref((uv_handle_t*) &loop->ws_poll);
    loop->ws_slot_sum += w->slot;
  } else {
    ev.data.u64 = ((uint64_t) loop->ws_slots[w->slot].gen << 32) | w->slot;
    err = auv__epoll_ctl(loop->ws_fd, EPOLL_CTL_MOD, w->fd, &ev);
    if (err == UV_ENOENT)  /* closed and opened again under the watcher */
      err = auv__epoll_ctl(loop->ws_fd, EPOLL_CTL_ADD, w->fd, &ev);
    if (err != 0)
      return err;
  }
  w->events = want;
  return 0;
}


/* What the last poll found for these directions will not run. */
static void auv__watch_drop(auv_watch_t* w, int events) {
  w->rec.events &= ~events;
  if (w->rec.events == 0)
    auv__rec_forget(w->loop, &w->rec);
}


int auv_watch_new(auv_loop_t* loop, int fd, auv_watch_cb cb, auv_watch_t** w_out) {
  auv_watch_t* w;

  if (w_out == NULL)
    return UV_EINVAL;
  *w_out = NULL;
  if (loop == NULL || cb == NULL || fd < 0)
    return UV_EINVAL;
  w = calloc(1, sizeof(*w));
  if (w == NULL)
    return UV_ENOMEM;
  w->rec.run = auv__watch_rec_run;
  w->loop = loop;
  w->cb = cb;
  w->fd = fd;
  loop->ws_alive++;
  *w_out = w;
  return 0;
}


int auv_watch_start(auv_watch_t* w, int events) {
  if (w == NULL || (events & ~(AUV_READABLE | AUV_WRITABLE)) != 0)
    return UV_EINVAL;
  auv__watch_drop(w, events);
  return auv__watch_set(w, w->events | events);
}


int auv_watch_stop(auv_watch_t* w, int events) {
  if (w == NULL || (events & ~(AUV_READABLE | AUV_WRITABLE)) != 0)
    return UV_EINVAL;
  auv__watch_drop(w, events);
  return auv__watch_set(w, w->events & ~events);
}


void auv_watch_free(auv_watch_t* w) {
  if (w == NULL)
    return;
  (void) auv__watch_set(w, 0);  /* a removal cannot fail */
  auv__rec_forget(w->loop, &w->rec);
  w->loop->ws_alive--;
  free(w);
}


int auv_watch_get_events(const auv_watch_t* w) {
  return w == NULL ? 0 : w->events;
}


int auv_watch_get_fd(const auv_watch_t* w) {
  return w == NULL ? -1 : w->fd;
}


auv_loop_t* auv_watch_get_loop(const auv_watch_t* w) {
  return w == NULL ? NULL : w->loop;
}


void auv_watch_set_data(auv_watch_t* w, void* data) {
  if (w != NULL)
    w->data = data;
}


void* auv_watch_get_data(const auv_watch_t* w) {
  return w == NULL ? NULL : w->data;
}
