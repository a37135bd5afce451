/*
 * epoll_floor.c -- the least a server can do per request: the kernel floor.
 *
 * No event loop library and no Python: one epoll set, a level-triggered
 * read(2) into a static buffer and one write(2) of the answer.  What the
 * server spends per request here is (almost) all the kernel's: the TCP
 * receive, the send, the loopback delivery to the client and waking it.
 * No loop can spend less under the same load, so run.py measures it next to
 * the loops, interleaved with them, as the floor of their rows.
 *
 * Two answers:
 *   echo (default)  what was read is written back, as echo_server.py does;
 *   --http          every request (the bytes up to an empty line, CRLF CRLF)
 *                   gets http_server.py's fixed 200 response, pipelined
 *                   requests in order.  Requests have no body (wrk's GETs).
 *
 * Correct for any message size: what a write(2) does not take is kept per
 * connection, reading from that connection stops, and EPOLLOUT finishes the
 * write (the Python servers and libuv_echo also stop reading, at 1 MiB).
 *
 * Protocol shared with libuv_echo.c: print "LISTENING <port>" once
 * listening; SIGTERM or SIGINT ends it, and so does --max-seconds
 * (default 900).  Only loopback addresses or a Unix socket.
 *
 * Build: cc -O2 -o epoll_floor epoll_floor.c
 * Usage: epoll_floor [--http] [--host 127.0.0.1] [--port 0] [--unix PATH]
 *                    [--backlog 1024] [--max-seconds 900]
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024) /* as the loops' largest read */
#define MAX_EVENTS 1024

/* http_server.py's RESPONSE, byte for byte. */
static const char http_response[] = "HTTP/1.1 200 OK\r\n"
                                    "Content-Type: text/plain\r\n"
                                    "Content-Length: 13\r\n"
                                    "\r\n"
                                    "Hello, World!";
#define HTTP_RESPONSE_LEN (sizeof http_response - 1)

/* What a write(2) left over, for one connection; NULL while it has none. */
struct pending {
    size_t len;
    size_t off;
    char data[];
};

static char read_buf[READ_SIZE];
static char *out_buf; /* --http: the answers to one read */
static struct pending **pending; /* indexed by fd */
static unsigned char *http_state; /* --http, by fd: CRLFCRLF bytes matched */
static int http_mode;
static int max_fds;
static int epfd;

static void die(const char *what)
{
    fprintf(stderr, "epoll_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void watch(int op, int fd, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) != 0)
        die("epoll_ctl");
}

static void drop(int fd)
{
    free(pending[fd]);
    pending[fd] = NULL;
    if (http_mode)
        http_state[fd] = 0;
    close(fd); /* also leaves the epoll set */
}

static void accept_all(int lfd, int tcp)
{
    static const int one = 1;
    int fd;

    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (fd >= max_fds) {
            close(fd);
            continue;
        }
        if (tcp)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        fprintf(stderr, "epoll_floor: accept: %s\n", strerror(errno));
}

/* Write what is pending on fd; once it is all gone, read again. */
static void flush(int fd)
{
    struct pending *p = pending[fd];
    ssize_t n = write(fd, p->data + p->off, p->len - p->off);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(fd);
        return;
    }
    p->off += (size_t)n;
    if (p->off == p->len) {
        free(p);
        pending[fd] = NULL;
        watch(EPOLL_CTL_MOD, fd, EPOLLIN);
    }
}

/* --http: one answer per request ending in buf; the match state carries
 * a terminator split across reads over to the next read. */
static size_t answer_http(int fd, const char *buf, size_t n)
{
    static const char end[] = "\r\n\r\n";
    unsigned state = http_state[fd];
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        if (buf[i] == end[state])
            state++;
        else
            state = buf[i] == '\r';
        if (state == 4) {
            memcpy(out_buf + out, http_response, HTTP_RESPONSE_LEN);
            out += HTTP_RESPONSE_LEN;
            state = 0;
        }
    }
    http_state[fd] = (unsigned char)state;
    return out;
}

static void serve(int fd)
{
    ssize_t n = read(fd, read_buf, sizeof read_buf);
    const char *data = read_buf;
    ssize_t w;
    struct pending *p;

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            drop(fd);
        return;
    }
    if (http_mode) {
        n = (ssize_t)answer_http(fd, read_buf, (size_t)n);
        data = out_buf;
        if (n == 0)
            return;
    }
    w = write(fd, data, (size_t)n);
    if (w == n)
        return;
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            drop(fd);
            return;
        }
        w = 0;
    }
    p = malloc(sizeof *p + (size_t)(n - w));
    if (p == NULL)
        die("malloc");
    p->len = (size_t)(n - w);
    p->off = 0;
    memcpy(p->data, data + w, p->len);
    pending[fd] = p;
    watch(EPOLL_CTL_MOD, fd, EPOLLOUT);
}

static int listen_tcp(const char *host, int port, int backlog, int *bound)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr)) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
            goto not_loopback;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)port);
        len = sizeof *sin;
    } else if (inet_pton(AF_INET6, host,
                         &((struct sockaddr_in6 *)&ss)->sin6_addr)) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
            goto not_loopback;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)port);
        len = sizeof *sin6;
    } else {
        fprintf(stderr, "epoll_floor: bad --host %s\n", host);
        exit(2);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0)
        die("bind");
    if (listen(fd, backlog) != 0)
        die("listen");
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        die("getsockname");
    *bound = ntohs(ss.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;

not_loopback:
    fprintf(stderr, "epoll_floor: --host must be a loopback address\n");
    exit(2);
}

static int listen_unix(const char *path, int backlog)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof sun.sun_path) {
        fprintf(stderr, "epoll_floor: --unix path too long\n");
        exit(2);
    }
    strcpy(sun.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket (unix)");
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
        die("bind (unix)");
    if (listen(fd, backlog) != 0)
        die("listen (unix)");
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: epoll_floor [--http] [--host ADDR] [--port N] "
                    "[--unix PATH] [--backlog N] [--max-seconds S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *unix_path = NULL;
    int port = 0, backlog = 1024, bound, tcp_fd, unix_fd = -1, sig_fd, tm_fd;
    double max_seconds = 900;
    struct epoll_event events[MAX_EVENTS];
    struct itimerspec deadline = {{0, 0}, {0, 0}};
    sigset_t stop_set;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--http")) {
            http_mode = 1;
            continue;
        }
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
    max_fds = 65536;
    pending = calloc((size_t)max_fds, sizeof *pending);
    if (pending == NULL)
        die("calloc");
    if (http_mode) {
        /* A request is at least 4 bytes, so a read holds at most this many. */
        out_buf = malloc(READ_SIZE / 4 * HTTP_RESPONSE_LEN);
        http_state = calloc((size_t)max_fds, 1);
        if (out_buf == NULL || http_state == NULL)
            die("malloc");
    }

    /* SIGTERM/SIGINT and the deadline arrive as readable fds. */
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop_set, NULL) != 0)
        die("sigprocmask");
    sig_fd = signalfd(-1, &stop_set, SFD_NONBLOCK | SFD_CLOEXEC);
    tm_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sig_fd < 0 || tm_fd < 0)
        die("signalfd/timerfd");
    deadline.it_value.tv_sec = (time_t)max_seconds;
    deadline.it_value.tv_nsec =
        (long)((max_seconds - (double)(time_t)max_seconds) * 1e9);
    if (timerfd_settime(tm_fd, 0, &deadline, NULL) != 0)
        die("timerfd_settime");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    tcp_fd = listen_tcp(host, port, backlog, &bound);
    watch(EPOLL_CTL_ADD, tcp_fd, EPOLLIN);
    if (unix_path) {
        unix_fd = listen_unix(unix_path, backlog);
        watch(EPOLL_CTL_ADD, unix_fd, EPOLLIN);
    }
    watch(EPOLL_CTL_ADD, sig_fd, EPOLLIN);
    watch(EPOLL_CTL_ADD, tm_fd, EPOLLIN);
    printf("LISTENING %d\n", bound);
    fflush(stdout);

    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == sig_fd)
                goto out;
            if (fd == tm_fd) {
                fprintf(stderr, "epoll_floor: --max-seconds reached, exiting\n");
                goto out;
            }
            if (fd == tcp_fd || fd == unix_fd)
                accept_all(fd, fd == tcp_fd);
            else if (pending[fd] != NULL)
                flush(fd);
            else
                serve(fd);
        }
    }
out:
    if (unix_path)
        unlink(unix_path);
    return 0;
}
