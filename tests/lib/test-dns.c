#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <uv.h>

#include "runner.h"

typedef struct {
  auv_loop_t* loop;
  int calls;
  int status;
  int found_loopback;
  int in_call;
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
} dns_ctx_t;


static void on_addrinfo(auv_loop_t* loop, int status, struct addrinfo* res,
                        void* data) {
  dns_ctx_t* ctx;
  struct addrinfo* ai;
  struct sockaddr_in* sin;

  ctx = data;
  ASSERT(!ctx->in_call);
  ASSERT(loop == ctx->loop);
  ctx->calls++;
  ctx->status = status;
  if (status != 0) {
    ASSERT(res == NULL);
    return;
  }
  ASSERT(res != NULL);
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    ASSERT_EQ(AF_INET, ai->ai_family);
    sin = (struct sockaddr_in*) ai->ai_addr;
    if (sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
        sin->sin_port == htons(8080))
      ctx->found_loopback = 1;
  }
  auv_freeaddrinfo(res);
}


TEST_IMPL(dns_getaddrinfo_localhost) {
  struct addrinfo hints;
  dns_ctx_t ctx;

  memset(&ctx, 0, sizeof(ctx));
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  ASSERT_OK(auv_loop_new(&ctx.loop));
  ctx.in_call = 1;
  ASSERT_OK(auv_getaddrinfo(ctx.loop, "localhost", "8080", &hints,
                            on_addrinfo, &ctx));
  ctx.in_call = 0;
  /* A pending request keeps the loop alive, and open. */
  ASSERT(auv_loop_alive(ctx.loop));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(ctx.loop));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx.calls);
  ASSERT_OK(ctx.status);
  ASSERT(ctx.found_loopback);
  CLOSE_LOOP(ctx.loop);
}


TEST_IMPL(dns_getaddrinfo_bad_name) {
  struct addrinfo hints;
  dns_ctx_t ctx;

  memset(&ctx, 0, sizeof(ctx));
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  ASSERT_OK(auv_loop_new(&ctx.loop));
  /* .invalid never resolves (RFC 6761); without a network the resolver
   * may also say it could not ask. */
  ASSERT_OK(auv_getaddrinfo(ctx.loop, "nonexistent.invalid", NULL, &hints,
                            on_addrinfo, &ctx));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx.calls);
  ASSERT(ctx.status == UV_EAI_NONAME || ctx.status == UV_EAI_AGAIN ||
         ctx.status == UV_EAI_FAIL || ctx.status == UV_EAI_NODATA);

  /* A numeric-only lookup of a name fails without asking anyone. */
  hints.ai_flags = AI_NUMERICHOST;
  ASSERT_OK(auv_getaddrinfo(ctx.loop, "localhost", NULL, &hints,
                            on_addrinfo, &ctx));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, ctx.calls);
  ASSERT_EQ(UV_EAI_NONAME, ctx.status);
  CLOSE_LOOP(ctx.loop);
}


static void on_nameinfo(auv_loop_t* loop, int status, const char* host,
                        const char* service, void* data) {
  dns_ctx_t* ctx;

  ctx = data;
  ASSERT(!ctx->in_call);
  ASSERT(loop == ctx->loop);
  ctx->calls++;
  ctx->status = status;
  ASSERT_OK(status);
  ASSERT(host != NULL && service != NULL);
  ASSERT(strlen(host) < sizeof(ctx->host));
  ASSERT(strlen(service) < sizeof(ctx->service));
  strcpy(ctx->host, host);
  strcpy(ctx->service, service);
}


TEST_IMPL(dns_getnameinfo) {
  struct sockaddr_in sin;
  dns_ctx_t ctx;

  memset(&ctx, 0, sizeof(ctx));
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(80);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(auv_loop_new(&ctx.loop));
  ctx.in_call = 1;
  ASSERT_OK(auv_getnameinfo(ctx.loop, (struct sockaddr*) &sin,
                            NI_NUMERICHOST | NI_NUMERICSERV, on_nameinfo, &ctx));
  ctx.in_call = 0;
  ASSERT_EQ(UV_EBUSY, auv_loop_close(ctx.loop));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx.calls);
  ASSERT_OK(strcmp(ctx.host, "127.0.0.1"));
  ASSERT_OK(strcmp(ctx.service, "80"));

  /* By name: /etc/hosts names 127.0.0.1. */
  ASSERT_OK(auv_getnameinfo(ctx.loop, (struct sockaddr*) &sin, NI_NUMERICSERV,
                            on_nameinfo, &ctx));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, ctx.calls);
  ASSERT(ctx.host[0] != '\0');
  CLOSE_LOOP(ctx.loop);
}


static void never_addrinfo(auv_loop_t* loop, int status, struct addrinfo* res,
                           void* data) {
  ASSERT(0);
}


static void never_nameinfo(auv_loop_t* loop, int status, const char* host,
                           const char* service, void* data) {
  ASSERT(0);
}


TEST_IMPL(dns_einval) {
  struct sockaddr_in sin;
  struct sockaddr sa;
  auv_loop_t* loop;

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  memset(&sa, 0, sizeof(sa));
  sa.sa_family = AF_UNIX;
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_getaddrinfo(NULL, "localhost", NULL, NULL,
                                       never_addrinfo, NULL));
  ASSERT_EQ(UV_EINVAL, auv_getaddrinfo(loop, "localhost", NULL, NULL,
                                       NULL, NULL));
  ASSERT_EQ(UV_EINVAL, auv_getaddrinfo(loop, NULL, NULL, NULL,
                                       never_addrinfo, NULL));
  ASSERT_EQ(UV_EINVAL, auv_getnameinfo(NULL, (struct sockaddr*) &sin, 0,
                                       never_nameinfo, NULL));
  ASSERT_EQ(UV_EINVAL, auv_getnameinfo(loop, NULL, 0, never_nameinfo, NULL));
  ASSERT_EQ(UV_EINVAL, auv_getnameinfo(loop, (struct sockaddr*) &sin, 0,
                                       NULL, NULL));
  ASSERT_EQ(UV_EINVAL, auv_getnameinfo(loop, &sa, 0, never_nameinfo, NULL));
  auv_freeaddrinfo(NULL);
  ASSERT(!auv_loop_alive(loop));
  CLOSE_LOOP(loop);
}
