/*
 * echo_client.c -- closed-loop load generator for the echo benchmarks.
 *
 * Opens N connections to an echo server (TCP on a loopback address, or a
 * Unix socket), and drives them all from one thread with epoll: each
 * connection sends a message of S bytes, waits until the whole message has
 * come back (and checks it byte for byte), then sends the next one.  The
 * first W seconds are a warm-up; then "START" is printed on stdout, the
 * measured interval runs for D seconds (or until R requests completed), and
 * one machine-readable line is printed:
 *
 *   RESULT requests=... seconds=... rps=... p50_us=... p90_us=... p99_us=...
 *          max_us=... conns=... size=... errors=0
 *
 * (on one line).  Latency is the time from the first byte of a request being
 * written to the last byte of its echo being read, in microseconds.  A
 * harness can sample the server's CPU time when it sees START and RESULT, to
 * get CPU per request over exactly the measured interval.
 *
 * Everything stops by itself: after the measured interval, or at the
 * overall -t timeout, or at the first error (exit status 1).  Only a
 * loopback address (127.x.x.x, ::1) or a Unix socket is accepted.
 *
 * Built with -DECHO_TLS (and -lssl -lcrypto), -S speaks TLS: each
 * connection makes its handshake (OpenSSL, TLS 1.3, no certificate check)
 * before the warm-up, then requests and echoes go through SSL_write() and
 * SSL_read().
 *
 * Build: cc -O2 -o echo_client echo_client.c   (Linux; no dependencies)
 *        cc -O2 -DECHO_TLS -o echo_client_tls echo_client.c -lssl -lcrypto
 * Usage: echo_client (-p PORT [-H HOST] | -u PATH) [-c CONNS] [-s SIZE]
 *                    [-d SECONDS | -n REQUESTS] [-w WARMUP_S] [-t TIMEOUT_S]
 *                    [-S]
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef ECHO_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

/* One client connection and the request it has in flight. */
struct conn {
    int fd;
#ifdef ECHO_TLS
    SSL *ssl;            /* with -S */
#endif
    unsigned char *msg;  /* the current request, `size` bytes */
    size_t sent;         /* bytes of msg written so far */
    size_t received;     /* bytes of the echo read so far */
    uint64_t t_start;    /* monotonic ns when the request started */
    uint64_t seq;        /* request number on this connection */
    int active;          /* a request is in flight */
    int want_out;        /* EPOLLOUT is currently requested */
};

/* Growable array of latencies (ns) of the measured interval. */
struct lat {
    uint64_t *v;
    size_t n, cap;
};

static struct {
    const char *host, *port, *unix_path;
    long conns;
    size_t size;
    double duration, warmup, timeout;
    long long max_requests; /* 0: run for `duration` */
    int tls;                /* -S */
} opt = {"127.0.0.1", NULL, NULL, 10, 1024, 5.0, 1.0, 0.0, 0, 0};

#ifdef ECHO_TLS
static SSL_CTX *tls_ctx;
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "echo_client: %s: %s\n", what, strerror(errno));
    printf("RESULT errors=1\n");
    exit(1);
}

static void fail(const char *fmt, const char *detail)
{
    fprintf(stderr, "echo_client: ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    printf("RESULT errors=1\n");
    exit(1);
}

static void lat_push(struct lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1 << 16;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            die("realloc");
    }
    l->v[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted array, in microseconds. */
static double pct_us(const struct lat *l, double p)
{
    if (l->n == 0)
        return 0.0;
    size_t rank = (size_t)(p / 100.0 * (double)l->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return (double)l->v[rank - 1] / 1000.0;
}

/* True for 127.0.0.0/8 and ::1: the only addresses this client talks to. */
static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(
            &((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

/* Connect one socket (blocking), then make it non-blocking. */
static int open_conn(const struct addrinfo *ai, const struct sockaddr_un *sun)
{
    int fd;
    if (sun) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (const struct sockaddr *)sun, sizeof *sun) < 0)
            die("connect (unix)");
    } else {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
    return fd;
}

static void set_events(int ep, struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->want_out = want_out;
}

#ifdef ECHO_TLS
/* The TLS connection over fd, its handshake made (fd still blocking). */
static SSL *tls_open(int fd)
{
    SSL *ssl = SSL_new(tls_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        fail("%s", "TLS handshake failed");
    }
    return ssl;
}

/* send()/recv() through TLS: the same results, errno EAGAIN when the
 * record layer waits for the socket. */
static ssize_t tls_io(struct conn *c, void *buf, size_t len, int writing)
{
    int n = writing ? SSL_write(c->ssl, buf, (int)len)
                    : SSL_read(c->ssl, buf, (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (n == 0 || errno == 0)
            return 0;
        return -1;
    default:
        ERR_print_errors_fp(stderr);
        errno = EPROTO;
        return -1;
    }
}
#endif

static ssize_t conn_send(struct conn *c, const void *buf, size_t len)
{
#ifdef ECHO_TLS
    if (opt.tls)
        return tls_io(c, (void *)buf, len, 1);
#endif
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t conn_recv(struct conn *c, void *buf, size_t len)
{
#ifdef ECHO_TLS
    if (opt.tls)
        return tls_io(c, buf, len, 0);
#endif
    return recv(c->fd, buf, len, 0);
}

/* Write as much of the current request as the socket takes. */
static void pump_out(int ep, struct conn *c)
{
    while (c->sent < opt.size) {
        ssize_t n = conn_send(c, c->msg + c->sent, opt.size - c->sent);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(ep, c, 1);
            return;
        } else {
            die("send");
        }
    }
    set_events(ep, c, 0);
}

/* Begin the next request on c: stamp its sequence number and send. */
static void start_request(int ep, struct conn *c)
{
    c->seq++;
    size_t k = opt.size < sizeof c->seq ? opt.size : sizeof c->seq;
    memcpy(c->msg, &c->seq, k);
    c->sent = c->received = 0;
    c->active = 1;
    c->t_start = now_ns();
    pump_out(ep, c);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_client (-p PORT [-H HOST] | -u PATH) [-c CONNS] "
            "[-s SIZE] [-d SECONDS | -n REQUESTS] [-w WARMUP_S] "
            "[-t TIMEOUT_S] [-S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "H:p:u:c:s:d:n:w:t:Sh")) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'u': opt.unix_path = optarg; break;
        case 'c': opt.conns = atol(optarg); break;
        case 's': opt.size = (size_t)atol(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.max_requests = atoll(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 't': opt.timeout = atof(optarg); break;
        case 'S': opt.tls = 1; break;
        default: usage();
        }
    }
    if ((!opt.port) == (!opt.unix_path) || opt.conns < 1 || opt.size < 1 ||
        opt.duration <= 0 || opt.warmup < 0 || opt.max_requests < 0)
        usage();
#ifdef ECHO_TLS
    if (opt.tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx)
            fail("%s", "SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION);
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
#else
    if (opt.tls)
        fail("%s", "built without TLS (-DECHO_TLS)");
#endif
    if (opt.timeout <= 0)
        opt.timeout = opt.warmup + (opt.max_requests ? 600.0 : opt.duration)
                      + 30.0;

    /* Room for the connections (root may raise the hard limit too). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)opt.conns + 64) {
        rlim_t want = (rlim_t)opt.conns + 64;
        if (rl.rlim_max < want)
            rl.rlim_max = want;
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct addrinfo *ai = NULL;
    struct sockaddr_un sun;
    if (opt.unix_path) {
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if (strlen(opt.unix_path) >= sizeof sun.sun_path)
            fail("socket path too long: %s", opt.unix_path);
        strcpy(sun.sun_path, opt.unix_path);
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
        int rc = getaddrinfo(opt.host, opt.port, &hints, &ai);
        if (rc != 0)
            fail("bad address: %s", gai_strerror(rc));
        if (!is_loopback(ai->ai_addr))
            fail("%s is not a loopback address (127.x.x.x or ::1)", opt.host);
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct conn *conns = calloc((size_t)opt.conns, sizeof *conns);
    unsigned char *scratch = malloc(65536);
    if (!conns || !scratch)
        die("malloc");
    for (long i = 0; i < opt.conns; i++) {
        struct conn *c = &conns[i];
        c->msg = malloc(opt.size);
        if (!c->msg)
            die("malloc");
        for (size_t j = 0; j < opt.size; j++)
            c->msg[j] = (unsigned char)('a' + (j + (size_t)i) % 26);
        c->fd = open_conn(ai, opt.unix_path ? &sun : NULL);
#ifdef ECHO_TLS
        if (opt.tls) {
            /* The handshake, blocking, before anything is measured. */
            int fl = fcntl(c->fd, F_GETFL);
            fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
            c->ssl = tls_open(c->fd);
            fcntl(c->fd, F_SETFL, fl);
        }
#endif
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }

    struct lat lat = {0};
    struct epoll_event events[256];
    uint64_t t0 = now_ns();
    uint64_t t_hard_end = t0 + (uint64_t)(opt.timeout * 1e9);
    uint64_t t_measure = t0 + (uint64_t)(opt.warmup * 1e9);
    uint64_t t_end = 0;         /* end of the measured interval, once known */
    int measuring = 0, stopping = 0;
    long long issued = 0;       /* requests started while measuring */
    long long completed = 0;    /* requests completed while measuring */
    long inflight = 0;

    if (opt.warmup == 0) {
        measuring = 1;
        t_end = t0 + (uint64_t)(opt.duration * 1e9);
        printf("START\n");
        fflush(stdout);
    }
    for (long i = 0; i < opt.conns; i++) {
        if (measuring && opt.max_requests && issued >= opt.max_requests)
            break;
        start_request(ep, &conns[i]);
        inflight++;
        issued += measuring;
    }

    uint64_t t_stop = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t_hard_end) {
            fprintf(stderr, "echo_client: timeout after %.1f s "
                    "(%ld requests in flight)\n", opt.timeout, inflight);
            printf("RESULT errors=1\n");
            return 1;
        }
        if (!measuring && now >= t_measure) {
            measuring = 1;
            t_measure = now;
            if (!opt.max_requests)
                t_end = now + (uint64_t)(opt.duration * 1e9);
            printf("START\n");
            fflush(stdout);
        }
        if (measuring && !stopping &&
            ((t_end && now >= t_end) ||
             (opt.max_requests && completed >= opt.max_requests))) {
            stopping = 1;
            t_stop = now;
            break;
        }

        uint64_t next = t_hard_end;
        if (!measuring)
            next = t_measure;
        else if (t_end)
            next = t_end;
        int timeout_ms = (int)((next - now) / 1000000u) + 1;
        int n = epoll_wait(ep, events, 256, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT)
                pump_out(ep, c);
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            for (;;) {
                size_t want = opt.size - c->received;
                if (!c->active)
                    want = 1; /* anything arriving now is an error */
                if (want > 65536)
                    want = 65536;
                ssize_t r = conn_recv(c, scratch, want);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (r < 0)
                    die("recv");
                if (r == 0)
                    fail("%s", "server closed a connection");
                if (!c->active)
                    fail("%s", "unexpected data from the server");
                if (memcmp(scratch, c->msg + c->received, (size_t)r) != 0)
                    fail("%s", "echoed data differs from what was sent");
                c->received += (size_t)r;
                if (c->received < opt.size)
                    continue;
                /* The whole echo is back: request complete. */
                uint64_t t = now_ns();
                c->active = 0;
                inflight--;
                if (measuring && c->t_start >= t_measure) {
                    lat_push(&lat, t - c->t_start);
                    completed++;
                }
                if (measuring && opt.max_requests &&
                    issued >= opt.max_requests)
                    break;
                start_request(ep, c);
                inflight++;
                issued += measuring;
                break; /* epoll reports the echo when it comes */
            }
        }
    }

    double seconds = (double)(t_stop - t_measure) / 1e9;
    qsort(lat.v, lat.n, sizeof *lat.v, cmp_u64);
    printf("RESULT requests=%lld seconds=%.6f rps=%.1f p50_us=%.1f "
           "p90_us=%.1f p99_us=%.1f max_us=%.1f conns=%ld size=%zu "
           "errors=0\n",
           completed, seconds, seconds > 0 ? (double)completed / seconds : 0,
           pct_us(&lat, 50), pct_us(&lat, 90), pct_us(&lat, 99),
           pct_us(&lat, 100), opt.conns, opt.size);
    fflush(stdout);
    for (long i = 0; i < opt.conns; i++)
        close(conns[i].fd);
    if (ai)
        freeaddrinfo(ai);
    return completed > 0 ? 0 : 1;
}
