/*
 * libuv_echo.c -- a pure-libuv echo server: the ceiling for the Python loops.
 *
 * What asyncio, uvloop and asyncuv do in bench/net/echo_server.py, without
 * any Python: accept on TCP 127.0.0.1 (and optionally on a Unix socket),
 * read into a buffer, try to write it straight back (uv_try_write), and
 * queue only what the socket did not take (uv_write on a copy).  Reading
 * pauses while more than 1 MiB waits to be written to a connection.
 *
 * It only listens on loopback addresses (127.x.x.x, ::1) or a Unix socket.
 * Protocol shared with echo_server.py: once listening, print
 * "LISTENING <port>" on stdout.  SIGTERM or SIGINT ends it; so does
 * --max-seconds (default 900), so a forgotten server does not linger.
 *
 * Build: cc -O2 -o libuv_echo libuv_echo.c -luv     (Debian: libuv1-dev)
 * Usage: libuv_echo [--host 127.0.0.1] [--port 0] [--unix PATH]
 *                   [--backlog 1024] [--max-seconds 900]
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define READ_SIZE (256 * 1024) /* as asyncio's and uvloop's max read */
#define HIGH_WATER (1024 * 1024)

static uv_loop_t *loop;
static char read_buf[READ_SIZE]; /* one thread: reads never overlap */
static uv_tcp_t tcp_server;
static uv_pipe_t unix_server;
static const char *unix_path;

/* A queued write owns a copy of the bytes the socket did not take. */
struct write_req {
    uv_write_t req;
    uv_buf_t buf;
};

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "libuv_echo: %s: %s\n", what, uv_strerror(rc));
        exit(1);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    uv_stream_t *s = req->handle;
    free(w->buf.base);
    free(w);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    /* Resume reading once the backlog has drained below the mark. */
    if (s->data && uv_stream_get_write_queue_size(s) < HIGH_WATER &&
        !uv_is_closing((uv_handle_t *)s)) {
        s->data = NULL;
        uv_read_start(s, on_alloc, on_read);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) { /* EOF or error */
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0)
        return;
    size_t off = 0;
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t data = uv_buf_init(buf->base, (unsigned)n); /* not buf->len */
        int r = uv_try_write(s, &data, 1);
        if (r > 0)
            off = (size_t)r;
        else if (r != UV_EAGAIN && r != UV_ENOSYS) {
            uv_close((uv_handle_t *)s, on_close);
            return;
        }
        if (off == (size_t)n)
            return;
    }
    /* Queue the rest; buf is reused by the next read, so copy it. */
    struct write_req *w = malloc(sizeof *w);
    char *copy = malloc((size_t)n - off);
    if (!w || !copy) {
        fprintf(stderr, "libuv_echo: out of memory\n");
        exit(1);
    }
    memcpy(copy, buf->base + off, (size_t)n - off);
    w->buf = uv_buf_init(copy, (unsigned)((size_t)n - off));
    check(uv_write(&w->req, s, &w->buf, 1, on_write), "uv_write");
    if (uv_stream_get_write_queue_size(s) >= HIGH_WATER) {
        s->data = s; /* paused: on_write resumes reading */
        uv_read_stop(s);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    uv_stream_t *client;
    if (server == (uv_stream_t *)&tcp_server) {
        uv_tcp_t *t = malloc(sizeof *t);
        check(t ? uv_tcp_init(loop, t) : UV_ENOMEM, "uv_tcp_init");
        client = (uv_stream_t *)t;
    } else {
        uv_pipe_t *p = malloc(sizeof *p);
        check(p ? uv_pipe_init(loop, p, 0) : UV_ENOMEM, "uv_pipe_init");
        client = (uv_stream_t *)p;
    }
    client->data = NULL; /* non-NULL while reading is paused */
    if (uv_accept(server, client) != 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    if (server == (uv_stream_t *)&tcp_server)
        uv_tcp_nodelay((uv_tcp_t *)client, 1);
    check(uv_read_start(client, on_alloc, on_read), "uv_read_start");
}

static void on_stop(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    uv_stop(loop);
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "libuv_echo: --max-seconds reached, exiting\n");
    uv_stop(loop);
}

static void usage(void)
{
    fprintf(stderr, "usage: libuv_echo [--host ADDR] [--port N] "
                    "[--unix PATH] [--backlog N] [--max-seconds S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, backlog = 1024;
    double max_seconds = 900;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--host"))
            host = argv[++i];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--unix"))
            unix_path = argv[++i];
        else if (!strcmp(argv[i], "--backlog"))
            backlog = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-seconds"))
            max_seconds = atof(argv[++i]);
        else
            usage();
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();

    struct sockaddr_storage addr;
    int loopback;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) == 0) {
        loopback = (ntohl(((struct sockaddr_in *)&addr)->sin_addr.s_addr)
                    >> 24) == 127;
    } else {
        check(uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr),
              "bad --host");
        loopback = IN6_IS_ADDR_LOOPBACK(
            &((struct sockaddr_in6 *)&addr)->sin6_addr);
    }
    if (!loopback) {
        fprintf(stderr, "libuv_echo: --host must be a loopback address\n");
        return 2;
    }
    check(uv_tcp_init(loop, &tcp_server), "uv_tcp_init");
    check(uv_tcp_bind(&tcp_server, (struct sockaddr *)&addr, 0), "bind");
    check(uv_listen((uv_stream_t *)&tcp_server, backlog, on_connection),
          "listen");
    if (unix_path) {
        unlink(unix_path);
        check(uv_pipe_init(loop, &unix_server, 0), "uv_pipe_init");
        check(uv_pipe_bind(&unix_server, unix_path), "bind (unix)");
        check(uv_listen((uv_stream_t *)&unix_server, backlog, on_connection),
              "listen (unix)");
    }

    uv_signal_t sigterm, sigint;
    uv_timer_t deadline;
    check(uv_signal_init(loop, &sigterm), "uv_signal_init");
    check(uv_signal_start(&sigterm, on_stop, SIGTERM), "uv_signal_start");
    check(uv_signal_init(loop, &sigint), "uv_signal_init");
    check(uv_signal_start(&sigint, on_stop, SIGINT), "uv_signal_start");
    check(uv_timer_init(loop, &deadline), "uv_timer_init");
    check(uv_timer_start(&deadline, on_deadline,
                         (uint64_t)(max_seconds * 1000), 0),
          "uv_timer_start");
    uv_unref((uv_handle_t *)&sigterm);
    uv_unref((uv_handle_t *)&sigint);
    uv_unref((uv_handle_t *)&deadline);

    struct sockaddr_storage bound;
    int len = sizeof bound;
    check(uv_tcp_getsockname(&tcp_server, (struct sockaddr *)&bound, &len),
          "getsockname");
    int bound_port = ntohs(bound.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&bound)->sin6_port
                               : ((struct sockaddr_in *)&bound)->sin_port);
    printf("LISTENING %d\n", bound_port);
    fflush(stdout);

    uv_run(loop, UV_RUN_DEFAULT);
    if (unix_path)
        unlink(unix_path);
    return 0;
}
