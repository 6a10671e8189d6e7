/* select_echo [ADDR:PORT]: the seed tutorial's select echo server, in C as a C programmer
 * would write it at its best. Benchmark-only peer for bench/compare.py, built by
 * bench/run.sh with `gcc -O2`.
 *
 * As the tutorial: one select(2) over a read set (the listener and every client) and a
 * write set (clients with something queued), non-blocking sockets, one queue of received
 * chunks per client, at most FD_SETSIZE descriptors (a client on a descriptor select
 * cannot watch is closed at once: refused). Tuned as its author would: recv into a 64 KiB
 * buffer; a chunk is sent straight away when the queue was empty (no round trip through
 * select) and only what the socket did not take is queued; a writable client sends queued
 * chunks until EAGAIN; a client with 256 KiB queued is not read until it drains
 * (backpressure; the tutorial's queue is unbounded); no exceptional set. EOF: send what is
 * queued, then close. Any error: close that client only. SIGTERM or SIGINT: exit 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"

#define BUF (64 * 1024)
#define QUEUE_CAP (256 * 1024)

struct chunk {
    struct chunk *next;
    size_t off, len;
    char data[];
};

struct client {
    int open, eof;
    struct chunk *head, *tail;
    size_t queued;
};

static struct client clients[FD_SETSIZE];
static char buf[BUF];
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void drop(int fd)
{
    struct client *c = &clients[fd];
    while (c->head) {
        struct chunk *next = c->head->next;
        free(c->head);
        c->head = next;
    }
    memset(c, 0, sizeof *c);
    if (close(fd) < 0)
        perror("select_echo: close");
}

/* Sends queued chunks until the queue is empty or the socket full. -1: error. */
static int flush(int fd)
{
    struct client *c = &clients[fd];
    while (c->head) {
        struct chunk *h = c->head;
        ssize_t w = send(fd, h->data + h->off, h->len - h->off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        h->off += (size_t)w;
        c->queued -= (size_t)w;
        if (h->off == h->len) {
            c->head = h->next;
            if (!c->head)
                c->tail = NULL;
            free(h);
        }
    }
    return 0;
}

static int enqueue(struct client *c, const char *data, size_t n)
{
    struct chunk *k = malloc(sizeof *k + n);
    if (!k)
        return -1;
    k->next = NULL;
    k->off = 0;
    k->len = n;
    memcpy(k->data, data, n);
    if (c->tail)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->queued += n;
    return 0;
}

/* One readable client: one recv, echoed or queued. -1: the client is done. */
static int on_readable(int fd)
{
    struct client *c = &clients[fd];
    ssize_t r = recv(fd, buf, BUF, 0);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (r == 0) {
        c->eof = 1;
        return c->head ? 0 : -1;
    }
    size_t sent = 0;
    while (!c->head && sent < (size_t)r) {
        ssize_t w = send(fd, buf + sent, (size_t)r - sent, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else
            return -1;
    }
    return sent < (size_t)r ? enqueue(c, buf + sent, (size_t)r - sent) : 0;
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("select_echo: accept4");
            return;
        }
        int one = 1;
        if (fd >= FD_SETSIZE) {
            close(fd); /* select cannot watch it: refused */
            continue;
        }
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
            perror("select_echo: TCP_NODELAY");
            close(fd);
            continue;
        }
        clients[fd].open = 1;
    }
}

int main(int argc, char **argv)
{
    int lfd = listen_on(argc > 1 ? argv[1] : "127.0.0.1:0", "select_echo");
    if (lfd < 0)
        return 1;
    if (lfd >= FD_SETSIZE) {
        fprintf(stderr, "select_echo: listener fd %d is beyond FD_SETSIZE\n", lfd);
        return 1;
    }
    /* Signals stay blocked except inside pselect, so none is lost between the check of
     * `stopping` and the wait. */
    sigset_t stop, during;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    struct sigaction sa = {.sa_handler = on_signal};
    if (sigprocmask(SIG_BLOCK, &stop, &during) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGINT, &sa, NULL) < 0) {
        perror("select_echo: signals");
        return 1;
    }
    sigdelset(&during, SIGTERM);
    sigdelset(&during, SIGINT);
    if (announce(lfd, "select_echo") < 0)
        return 1;
    while (!stopping) {
        fd_set rset, wset;
        FD_ZERO(&rset);
        FD_ZERO(&wset);
        FD_SET(lfd, &rset);
        int maxfd = lfd;
        for (int fd = 0; fd < FD_SETSIZE; fd++) {
            struct client *c = &clients[fd];
            if (!c->open)
                continue;
            if (!c->eof && c->queued < QUEUE_CAP)
                FD_SET(fd, &rset);
            if (c->head)
                FD_SET(fd, &wset);
            maxfd = fd > maxfd ? fd : maxfd;
        }
        int n = pselect(maxfd + 1, &rset, &wset, NULL, NULL, &during);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("select_echo: select");
            return 1;
        }
        for (int fd = 0; fd <= maxfd && n > 0; fd++) {
            int r = !!FD_ISSET(fd, &rset), w = !!FD_ISSET(fd, &wset);
            if (!r && !w)
                continue;
            n -= r + w;
            if (fd == lfd) {
                accept_all(lfd);
                continue;
            }
            if ((r && on_readable(fd) < 0) || (w && flush(fd) < 0) ||
                (clients[fd].eof && !clients[fd].head))
                drop(fd);
        }
    }
    return 0;
}
