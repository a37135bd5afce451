/* DNS: libuv's getaddrinfo() and getnameinfo() on its thread pool, with the
 * results delivered on the loop thread.  Pending requests are counted so
 * that auv_loop_close() refuses to free a loop they still point to. */
#include <stdlib.h>

#include "internal.h"

typedef struct {
  uv_getaddrinfo_t req;
  auv_loop_t* loop;
  auv_getaddrinfo_cb cb;
  void* data;
} auv__getaddrinfo_t;

typedef struct {
  uv_getnameinfo_t req;
  auv_loop_t* loop;
  auv_getnameinfo_cb cb;
  void* data;
} auv__getnameinfo_t;


static void auv__getaddrinfo_done(uv_getaddrinfo_t* req,
                                  int status,
                                  struct addrinfo* res) {
  auv__getaddrinfo_t* r;
  auv_getaddrinfo_cb cb;
  auv_loop_t* loop;
  void* data;

  r = (auv__getaddrinfo_t*) req;
  loop = r->loop;
  auv__loop_unblock(loop);
  loop->dns_pending--;
  cb = r->cb;
  data = r->data;
  free(r);
  cb(loop, status, res, data);
}


int auv_getaddrinfo(auv_loop_t* loop, const char* node,
                    const char* service,
                    const struct addrinfo* hints,
                    auv_getaddrinfo_cb cb, void* data) {
  auv__getaddrinfo_t* r;
  int err;

  if (loop == NULL || cb == NULL || (node == NULL && service == NULL))
    return UV_EINVAL;

  r = malloc(sizeof(*r));
  if (r == NULL)
    return UV_ENOMEM;
  r->loop = loop;
  r->cb = cb;
  r->data = data;
  err = uv_getaddrinfo(&loop->uv, &r->req, auv__getaddrinfo_done,
                       node, service, hints);
  if (err != 0) {
    free(r);
    return err;
  }
  loop->dns_pending++;
  return 0;
}


void auv_freeaddrinfo(struct addrinfo* res) {
  uv_freeaddrinfo(res);
}


static void auv__getnameinfo_done(uv_getnameinfo_t* req,
                                  int status,
                                  const char* host,
                                  const char* service) {
  auv__getnameinfo_t* r;
  auv_loop_t* loop;

  r = (auv__getnameinfo_t*) req;
  loop = r->loop;
  auv__loop_unblock(loop);
  loop->dns_pending--;
  /* host and service live in the request: free it after the callback. */
  r->cb(loop, status, host, service, r->data);
  free(r);
}


int auv_getnameinfo(auv_loop_t* loop, const struct sockaddr* addr,
                    int flags, auv_getnameinfo_cb cb, void* data) {
  auv__getnameinfo_t* r;
  int err;

  if (loop == NULL || addr == NULL || cb == NULL)
    return UV_EINVAL;
  if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
    return UV_EINVAL;

  r = malloc(sizeof(*r));
  if (r == NULL)
    return UV_ENOMEM;
  r->loop = loop;
  r->cb = cb;
  r->data = data;
  err = uv_getnameinfo(&loop->uv, &r->req, auv__getnameinfo_done, addr, flags);
  if (err != 0) {
    free(r);
    return err;
  }
  loop->dns_pending++;
  return 0;
}
