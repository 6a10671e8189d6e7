/* The two C peers' shared start-up: listen on "HOST:PORT" ("[::1]:0" for IPv6), then print
 * "listening on HOST:PORT" (the port the kernel chose) as `echoloop serve` does, so
 * bench/compare.py starts every server the same way. Header-only: each peer is one
 * `gcc -O2` command in bench/run.sh. */
#ifndef ECHO_LISTEN_H
#define ECHO_LISTEN_H

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A non-blocking listening socket on `spec`, or -1 after one line on stderr. */
static int listen_on(const char *spec, const char *name)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : 0;
    if (!colon || len == 0 || len >= sizeof host) {
        fprintf(stderr, "%s: '%s' is not HOST:PORT\n", name, spec);
        return -1;
    }
    memcpy(host, spec, len);
    host[len] = 0;
    if (host[0] == '[' && host[len - 1] == ']') {
        memmove(host, host + 1, len - 2);
        host[len - 2] = 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "%s: '%s': %s\n", name, spec, gai_strerror(rc));
        return -1;
    }
    int one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "%s: cannot listen on %s: ", name, spec);
        perror(NULL);
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Prints "listening on HOST:PORT" and flushes it; -1 on failure. */
static int announce(int fd, const char *name)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN], port[8];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        fprintf(stderr, "%s: cannot read the bound address\n", name);
        return -1;
    }
    int v6 = ss.ss_family == AF_INET6;
    if (printf(v6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n", host, port) < 0 ||
        fflush(stdout) != 0) {
        perror(name);
        return -1;
    }
    return 0;
}

#endif
