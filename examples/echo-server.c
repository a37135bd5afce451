/* echo-server: a TCP echo server on libasyncuv, with no Python in it.
 *
 *   cc -o echo-server echo-server.c $(pkg-config --cflags --libs asyncuv)
 *   ./echo-server [PORT [CONNECTIONS]]
 *
 * Listens on 127.0.0.1:PORT (0, the default, picks a free port) and prints
 * "listening on 127.0.0.1:<port>".  Every connection gets back what it
 * sends; at end of input the server half-closes once everything is echoed.
 * With CONNECTIONS > 0 the server stops accepting after that many
 * connections, and the program exits when they are all closed; otherwise
 * it runs until killed.
 *
 * It shows the shape of a libasyncuv program: the caller owns the sockets
 * (auv_tcp_listen() makes the listening one, the listener hands each
 * accepted fd to its callback), a stream reads into memory the caller gives
 * and writes at once what the socket takes, queueing the rest; the loop
 * returns when nothing is left to do. */
#include <asyncuv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Stop reading from a peer that does not read its echo. */
#define HIGH_WATER (1024 * 1024)

typedef struct {
  auv_stream_t* stream;
  int fd;
  char buf[65536];
} conn_t;

static auv_loop_t* loop;
static auv_listener_t* listener;
static int listen_fd = -1;
static long remaining;  /* connections still to accept; 0: no limit */

static void on_read(auv_stream_t* stream, ssize_t nread, char* base);


static void on_closed(void* data) {
  free(data);
}


static void conn_close(conn_t* c) {
  auv_stream_close(c->stream, on_closed);  /* frees c once released */
  close(c->fd);
}


static void on_alloc(auv_stream_t* stream, size_t suggested, char** base,
                     size_t* len) {
  conn_t* c = auv_stream_get_data(stream);

  *base = c->buf;
  *len = sizeof(c->buf);
}


static void on_shutdown(auv_stream_t* stream, int status) {
  conn_close(auv_stream_get_data(stream));
}


/* The write queue emptied (status 0) or failed. */
static void on_drain(auv_stream_t* stream, int status) {
  if (status < 0)
    conn_close(auv_stream_get_data(stream));
  else if (!auv_stream_is_reading(stream))
    auv_stream_read_start(stream, on_alloc, on_read);
}


static void on_read(auv_stream_t* stream, ssize_t nread, char* base) {
  auv_buf_t buf;

  if (nread == 0)
    return;
  if (nread < 0) {
    /* End of input: half-close once the echo is written.  An error: close. */
    if (nread != AUV_EOF || auv_stream_shutdown(stream, on_shutdown) != 0)
      conn_close(auv_stream_get_data(stream));
    return;
  }
  buf.base = base;
  buf.len = (size_t) nread;
  if (auv_stream_write(stream, &buf, 1) < 0) {
    conn_close(auv_stream_get_data(stream));
    return;
  }
  if (auv_stream_write_queue_size(stream) > HIGH_WATER)
    auv_stream_read_stop(stream);  /* on_drain() resumes */
}


/* The listener is released: its socket may go. */
static void on_listener_closed(void* data) {
  close(listen_fd);
}


static void on_connection(auv_listener_t* l, int status, int fd) {
  conn_t* c;

  if (status < 0) {
    fprintf(stderr, "accept: %s\n", auv_strerror(status));
    return;
  }
  c = malloc(sizeof(*c));
  if (c == NULL || auv_stream_new(loop, fd, &c->stream) != 0) {
    free(c);
    close(fd);
    return;
  }
  c->fd = fd;
  auv_stream_set_data(c->stream, c);
  auv_stream_set_drain_cb(c->stream, on_drain);
  if (auv_stream_read_start(c->stream, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  if (remaining > 0 && --remaining == 0) {
    /* Enough: with the listener gone, the loop ends with the last
     * connection. */
    auv_listener_close(listener, on_listener_closed);
  }
}


int main(int argc, char** argv) {
  struct sockaddr_in addr;
  socklen_t len;
  int err;

  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(argc > 1 ? (unsigned short) atoi(argv[1]) : 0);
  remaining = argc > 2 ? atol(argv[2]) : 0;

  if ((err = auv_loop_new(&loop)) != 0 ||
      (err = auv_tcp_listen((struct sockaddr*) &addr, 128, AUV_TCP_REUSEADDR,
                            &listen_fd)) != 0 ||
      (err = auv_listener_new(loop, listen_fd, &listener)) != 0 ||
      (err = auv_listener_start(listener, on_connection)) != 0) {
    fprintf(stderr, "echo-server: %s\n", auv_strerror(err));
    return 1;
  }
  len = sizeof(addr);
  getsockname(listen_fd, (struct sockaddr*) &addr, &len);
  printf("listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));
  fflush(stdout);

  auv_loop_run(loop, AUV_RUN_DEFAULT);  /* returns when nothing is left */
  return auv_loop_close(loop) == 0 ? 0 : 1;
}
