/* epoll_echo [ADDR:PORT]: an edge-triggered epoll echo server, written the way a C
 * programmer tunes one. Benchmark-only peer for bench/compare.py, built by bench/run.sh
 * with `gcc -O2`.
 *
 * One thread. Every socket is registered once for EPOLLIN | EPOLLOUT | EPOLLET, so no
 * epoll_ctl is made per message. A ready connection reads into one shared 64 KiB buffer
 * until EAGAIN and sends each read straight back; only what the socket did not take is
 * copied to the connection's own pending buffer (at most 64 KiB), and the connection stops
 * reading until it is sent (backpressure). EOF: echo what is pending, then close. Any
 * error (reset, EPIPE): close that connection only. SIGTERM or SIGINT: exit 0.
 * Prints "listening on ADDR:PORT" once ready, like `echoloop serve`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"

#define BUF (64 * 1024)
#define EVENTS 256

struct conn {
    int fd;
    int eof;            /* the peer half-closed: close once pending is sent */
    size_t off, len;    /* pending[off..len] is still to send */
    char *pending;      /* allocated on the first partial send, BUF bytes */
};

static char buf[BUF];

static void conn_close(struct conn *c)
{
    /* close() also removes the descriptor from the epoll set. */
    if (close(c->fd) < 0)
        perror("epoll_echo: close");
    free(c->pending);
    free(c);
}

/* Sends data[0..n]; keeps what the socket did not take. 0: all sent or kept, -1: error. */
static int send_or_keep(struct conn *c, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w > 0) {
            data += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->pending && !(c->pending = malloc(BUF)))
                return -1;
            memmove(c->pending, data, n);
            c->off = 0;
            c->len = n;
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Sends what is pending. 1: all of it, 0: the socket is full again, -1: error. */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w > 0)
            c->off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    c->off = c->len = 0;
    return 1;
}

/* One edge: send what is pending, then read and echo until EAGAIN, EOF or a full socket.
 * Returns -1 when the connection is done (closed by the caller). */
static int serve(struct conn *c)
{
    int f = flush(c);
    if (f <= 0)
        return f;
    if (c->eof)
        return -1;
    for (;;) {
        ssize_t r = recv(c->fd, buf, BUF, 0);
        if (r > 0) {
            if (send_or_keep(c, buf, (size_t)r) < 0)
                return -1;
            if (c->len > 0)
                return 0; /* wait for EPOLLOUT before reading more */
        } else if (r == 0) {
            c->eof = 1;
            return c->len > 0 ? 0 : -1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else {
            return -1;
        }
    }
}

static void accept_all(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("epoll_echo: accept4"); /* EMFILE: the client waits in the backlog */
            return;
        }
        int one = 1;
        struct conn *c = calloc(1, sizeof *c);
        if (!c || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
            perror("epoll_echo: new connection");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll_echo: epoll_ctl");
            conn_close(c);
        }
    }
}

int main(int argc, char **argv)
{
    int lfd = listen_on(argc > 1 ? argv[1] : "127.0.0.1:0", "epoll_echo");
    if (lfd < 0)
        return 1;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    int sfd;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || sigprocmask(SIG_BLOCK, &stop, NULL) < 0 ||
        (sfd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0) {
        perror("epoll_echo: setup");
        return 1;
    }
    /* The listener and the signal descriptor are told apart from connections by address. */
    static int lmark, smark;
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = &lmark};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &smark};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) < 0) {
        perror("epoll_echo: epoll_ctl");
        return 1;
    }
    if (announce(lfd, "epoll_echo") < 0)
        return 1;
    struct epoll_event events[EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &smark)
                return 0;
            if (p == &lmark)
                accept_all(ep, lfd);
            else if (serve(p) < 0)
                conn_close(p);
        }
    }
}
