/* echoloop-lwip: the echoloop core serving TCP and UDP echo (port 7) on lwIP's raw API,
 * over lwIP's unix tapif netif. Every connection's state and queue lives in the core,
 * reached through echoloop.h; this file only moves bytes between pbufs and the buffers
 * the core lends, turns lwIP's callbacks into the core's events, and carries out the
 * core's actions. docs/porting-c.md explains it; ports/lwip/serve runs it.
 *
 * Threads: lwIP here is built with NO_SYS 0 and core locking. Every raw-API callback
 * runs on lwIP's tcpip thread, and so does every call of the core made from them; main()
 * sets up under LOCK_TCPIP_CORE(), then waits for a signal and shuts the core down. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "netif/tapif.h"

#include "echoloop.h"

#define ECHO_PORT 7
/* lwIP calls poll every TCP_SLOW_INTERVAL (500 ms) times this: the retry of a
 * tcp_write or tcp_close that found no memory when no `sent` callback comes first. */
#define POLL_INTERVAL 1
/* How long a graceful stop waits for the peers to close after their echo (ms). */
#define GRACE_MS 5000
/* The retry of a UDP echo lwIP could not take (ms). */
#define UDP_RETRY_MS 10

/* The driver's own per-connection table, indexed by the core's dense connection index:
 * which pcb serves it, and what lwIP handed over that the core has not taken yet. */
struct conn {
    struct tcp_pcb *pcb;     /* NULL: free, or lwIP already freed it (err callback) */
    echoloop_conn_id id;
    struct pbuf *held;       /* received, not yet in the core: still lwIP's receive
                                window (tcp_recved only once the core takes it) */
    bool fin;                /* the peer's FIN came, after `held` */
    bool eof_told;           /* ...and the core was told, once `held` was empty */
};

static echoloop_server *server;
static echoloop_udp *udp;
static struct udp_pcb *udp_pcb;
static struct conn *conns;
static uint32_t capacity;
static bool udp_retry_armed;
/* tcp_write calls that found lwIP's send queue full (ERR_MEM), retried since. */
static unsigned long long write_retries;
/* The pcb whose callback is running, and whether an action aborted it: that callback
 * must then return ERR_ABRT and never touch it again. */
static struct tcp_pcb *current;
static bool current_aborted;

/* sys_now() on 64 bits: it wraps after 49 days. */
static uint64_t now_ms(void) {
    static uint32_t last;
    static uint64_t high;
    uint32_t t = sys_now();
    if (t < last) high += (uint64_t)1 << 32;
    last = t;
    return high | t;
}

static void fail(const char *what, enum echoloop_result r) {
    fprintf(stderr, "echoloop-lwip: %s: %s\n", what, echoloop_result_str(r));
    exit(1);
}

static const char *reason_text(enum echoloop_close_reason r) {
    switch (r) {
    case ECHOLOOP_CLOSE_REASON_PEER_CLOSED: return "peer closed";
    case ECHOLOOP_CLOSE_REASON_RESET: return "reset";
    case ECHOLOOP_CLOSE_REASON_ERROR: return "error";
    case ECHOLOOP_CLOSE_REASON_IDLE_TIMEOUT: return "idle timeout";
    case ECHOLOOP_CLOSE_REASON_SHUTDOWN: return "shutdown";
    case ECHOLOOP_CLOSE_REASON_SHUTDOWN_TIMEOUT: return "shutdown timeout";
    case ECHOLOOP_CLOSE_REASON_ABORTED: return "aborted";
    }
    return "?";
}

/* ----- TCP: bytes between pbufs and the core's queues ----- */

/* Lent the free space of a queue: copies in what lwIP holds for the connection, and
 * reopens the window by as much. */
static size_t take_held(void *user, uint8_t *buf, size_t len) {
    struct conn *c = user;
    if (c->held == NULL) return 0;
    u16_t n = pbuf_copy_partial(c->held, buf, (u16_t)(len < 0xFFFF ? len : 0xFFFF), 0);
    c->held = pbuf_free_header(c->held, n);
    if (c->pcb != NULL) tcp_recved(c->pcb, n);
    return n;
}

/* --refuse-writes N: every Nth tcp_write is answered ERR_MEM without being made, so that
 * the tests exercise the retry path (lwIP here rarely runs out of send queue). */
static unsigned refuse_every, writes_seen;

static bool refused_write(void) {
    return refuse_every > 0 && ++writes_seen % refuse_every == 0;
}

/* Lent the oldest queued bytes: copies what the send buffer takes into it. ERR_MEM takes
 * nothing: the bytes stay in the core's queue and go out on the next `sent` or `poll`. */
static size_t give_to_tcp(void *user, const uint8_t *buf, size_t len) {
    struct conn *c = user;
    size_t room = tcp_sndbuf(c->pcb);
    size_t n = len < room ? len : room;
    if (n == 0) return 0;
    err_t e = refused_write() ? ERR_MEM : tcp_write(c->pcb, buf, (u16_t)n, TCP_WRITE_FLAG_COPY);
    if (e == ERR_MEM) write_retries++;
    return e == ERR_OK ? n : 0;
}

/* Moves bytes both ways until nothing moves, then tells the core of a FIN once every
 * byte before it is in. */
static void service(struct conn *c) {
    uint64_t now = now_ms();
    for (int round = 0; round < 64; round++) {
        echoloop_interest in;
        size_t moved = 0, n = 0;
        if (echoloop_conn_interest(server, c->id, &in) != ECHOLOOP_RESULT_OK) return;
        if (in.write && c->pcb != NULL &&
            echoloop_send(server, now, c->id, give_to_tcp, c, &n) == ECHOLOOP_RESULT_OK)
            moved += n;
        if (in.read && c->held != NULL &&
            echoloop_recv(server, now, c->id, take_held, c, &n) == ECHOLOOP_RESULT_OK)
            moved += n;
        if (moved == 0) break;
    }
    if (c->pcb != NULL) tcp_output(c->pcb);
    if (c->fin && c->held == NULL && !c->eof_told) {
        c->eof_told = true;
        echoloop_on_eof(server, now, c->id);
    }
}

/* ----- the core's actions and deadline ----- */

static err_t close_retry(void *arg, struct tcp_pcb *pcb) {
    (void)arg;
    /* tcp_close found no memory for the FIN: lwIP's docs say retry from poll, which lwIP
     * calls again until it succeeds (the pcb outlives a close from these states). */
    if (tcp_close(pcb) == ERR_OK) tcp_poll(pcb, NULL, 0);
    return ERR_OK;
}

/* Forgets a connection the core closed, and closes its pcb: a FIN after every queued
 * byte when graceful, a RST otherwise. */
static void finish(struct conn *c, bool graceful) {
    struct tcp_pcb *pcb = c->pcb;
    if (c->held != NULL) {
        if (pcb != NULL) tcp_recved(pcb, c->held->tot_len);
        pbuf_free(c->held);
    }
    memset(c, 0, sizeof *c);
    if (pcb == NULL) return;
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL); /* lwIP acknowledges and drops what still arrives */
    tcp_sent(pcb, NULL);
    tcp_err(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
    if (graceful && tcp_close(pcb) == ERR_OK) return;
    if (graceful) {
        tcp_poll(pcb, close_retry, POLL_INTERVAL);
        return;
    }
    tcp_abort(pcb);
    if (pcb == current) current_aborted = true;
}

static void on_deadline(void *arg);

/* Carries out every action the core owes, then sets the timer for its next deadline.
 * Called after every batch of events. */
static void settle(void) {
    echoloop_action a;
    while (echoloop_poll_action(server, &a) == ECHOLOOP_RESULT_OK &&
           a.kind != ECHOLOOP_ACTION_KIND_NONE) {
        if (a.id.index >= capacity) continue;
        struct conn *c = &conns[a.id.index];
        if (a.kind == ECHOLOOP_ACTION_KIND_SHUTDOWN_WRITE) {
            if (c->pcb != NULL) tcp_shutdown(c->pcb, 0, 1);
            continue;
        }
        fprintf(stderr, "echoloop-lwip: closed #%u.%u: %s\n", (unsigned)a.id.index,
                (unsigned)a.id.generation, reason_text(a.reason));
        finish(c, a.graceful);
    }
#ifdef ECHOLOOP_INVARIANTS
    /* The tests' build (make): the core's invariants after every batch of events. */
    char why[128] = "";
    if (echoloop_check_invariants(server, why, sizeof why) != ECHOLOOP_RESULT_OK) {
        fprintf(stderr, "echoloop-lwip: invariant broken: %s\n", why);
        abort();
    }
#endif
    uint64_t at;
    sys_untimeout(on_deadline, NULL);
    if (echoloop_next_deadline(server, &at) == ECHOLOOP_RESULT_OK && at != ECHOLOOP_NO_DEADLINE) {
        uint64_t now = now_ms(), wait = at > now ? at - now : 0;
        sys_timeout((u32_t)(wait < 0x7FFFFFFF ? wait : 0x7FFFFFFF), on_deadline, NULL);
    }
}

static void on_deadline(void *arg) {
    (void)arg;
    echoloop_on_timeout(server, now_ms());
    settle();
}

/* ----- lwIP's TCP callbacks ----- */

static void enter(struct tcp_pcb *pcb) {
    current = pcb;
    current_aborted = false;
}

static err_t leave(void) {
    err_t e = current_aborted ? ERR_ABRT : ERR_OK;
    current = NULL;
    current_aborted = false;
    return e;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    struct conn *c = arg;
    (void)err; /* always ERR_OK in lwIP 2.1 */
    enter(pcb);
    if (p == NULL) {
        c->fin = true;
    } else if (c->held == NULL) {
        c->held = p;
    } else {
        pbuf_cat(c->held, p); /* bounded by the window: tcp_recved waits for the core */
    }
    service(c);
    settle();
    return leave();
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len) {
    (void)len;
    enter(pcb);
    service(arg);
    settle();
    return leave();
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb) {
    enter(pcb);
    service(arg);
    settle();
    return leave();
}

/* lwIP freed the pcb (a RST, or its own abort): the core closes the connection. */
static void on_err(void *arg, err_t err) {
    struct conn *c = arg;
    c->pcb = NULL;
    uint32_t kind = err == ERR_RST    ? ECHOLOOP_ERROR_KIND_RESET
                    : err == ERR_CLSD ? ECHOLOOP_ERROR_KIND_HANG_UP
                                      : ECHOLOOP_ERROR_KIND_OTHER;
    echoloop_on_error(server, c->id, kind);
    settle();
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    (void)arg;
    if (err != ERR_OK || pcb == NULL) return ERR_VAL;
    echoloop_conn_id id;
    if (echoloop_on_accepted(server, now_ms(), &id) != ECHOLOOP_RESULT_OK || id.index >= capacity) {
        /* The table is full: refused with a RST (the core counted it). */
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    struct conn *c = &conns[id.index];
    *c = (struct conn){.pcb = pcb, .id = id};
    tcp_arg(pcb, c);
    tcp_nagle_disable(pcb); /* an echo answers at once */
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_poll(pcb, on_poll, POLL_INTERVAL);
    settle();
    return ERR_OK;
}

/* ----- UDP ----- */

struct datagram {
    struct pbuf *p;
    const ip_addr_t *addr;
    u16_t port;
};

static uint32_t take_datagram(void *user, uint8_t *buf, size_t len, echoloop_endpoint *from,
                              size_t *datagram_len) {
    struct datagram *d = user;
    u16_t n = d->p->tot_len;
    pbuf_copy_partial(d->p, buf, (u16_t)(n < len ? n : len), 0);
    *datagram_len = n;
    from->port = d->port;
    if (IP_IS_V6(d->addr)) {
        from->family = 6;
        memcpy(from->addr, ip_2_ip6(d->addr)->addr, 16);
    } else {
        from->family = 4;
        memcpy(from->addr, &ip_2_ip4(d->addr)->addr, 4);
    }
    return ECHOLOOP_UDP_RECV_KIND_DATAGRAM;
}

static uint32_t send_datagram(void *user, const uint8_t *buf, size_t len,
                              const echoloop_endpoint *to) {
    (void)user;
    ip_addr_t dst;
    memset(&dst, 0, sizeof dst);
    if (to->family == 4) {
        IP_SET_TYPE_VAL(dst, IPADDR_TYPE_V4);
        memcpy(&ip_2_ip4(&dst)->addr, to->addr, 4);
    } else {
        IP_SET_TYPE_VAL(dst, IPADDR_TYPE_V6);
        memcpy(ip_2_ip6(&dst)->addr, to->addr, 16);
    }
    struct pbuf *p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)len, PBUF_RAM);
    if (p == NULL) return ECHOLOOP_UDP_SEND_RESULT_WOULD_BLOCK;
    if (len > 0) pbuf_take(p, buf, (u16_t)len);
    err_t e = udp_sendto(udp_pcb, p, &dst, to->port);
    pbuf_free(p);
    if (e == ERR_OK) return ECHOLOOP_UDP_SEND_RESULT_SENT;
    return e == ERR_MEM || e == ERR_BUF ? ECHOLOOP_UDP_SEND_RESULT_WOULD_BLOCK
                                        : ECHOLOOP_UDP_SEND_RESULT_FAILED;
}

static void udp_retry(void *arg);

static void flush_udp(void) {
    enum echoloop_udp_sent sent = ECHOLOOP_UDP_SENT_SENT;
    while (sent == ECHOLOOP_UDP_SENT_SENT || sent == ECHOLOOP_UDP_SENT_FAILED) {
        if (echoloop_udp_send(udp, send_datagram, NULL, &sent) != ECHOLOOP_RESULT_OK) return;
    }
    if (sent == ECHOLOOP_UDP_SENT_WOULD_BLOCK && !udp_retry_armed) {
        udp_retry_armed = true;
        sys_timeout(UDP_RETRY_MS, udp_retry, NULL);
    }
}

static void udp_retry(void *arg) {
    (void)arg;
    udp_retry_armed = false;
    flush_udp();
}

static void on_datagram(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                        u16_t port) {
    (void)arg;
    (void)pcb;
    struct datagram d = {.p = p, .addr = addr, .port = port};
    echoloop_udp_recv(udp, now_ms(), take_datagram, &d, NULL);
    pbuf_free(p);
    flush_udp();
}

/* ----- start-up ----- */

struct options {
    echoloop_config tcp;
    echoloop_udp_config udp;
    const char *ip, *netmask, *gw;
    unsigned refuse_writes;
};

static void usage(void) {
    fprintf(stderr,
            "usage: echoloop-lwip [--ip A] [--netmask M] [--gw G] [--conns N] [--buffers N]\n"
            "                     [--queue BYTES] [--idle-ms MS] [--refuse-writes N]\n"
            "(run by ports/lwip/serve)\n");
    exit(2);
}

static uint64_t number(const char *flag, const char *text, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || v > max) {
        fprintf(stderr, "echoloop-lwip: %s: not a number up to %llu: '%s'\n", flag,
                (unsigned long long)max, text);
        exit(2);
    }
    return v;
}

static struct options parse(int argc, char **argv) {
    struct options o = {
        .tcp = {.conns = 256, .buffers = 256, .queue_size = 4096, .idle_timeout_ms = 60000},
        .ip = "10.0.7.2", .netmask = "255.255.255.0", .gw = "10.0.7.1",
    };
    if (echoloop_udp_config_default(&o.udp) != ECHOLOOP_RESULT_OK) usage();
    o.udp.slots = 16;
    o.udp.slot_size = 1472; /* the largest datagram one 1500-byte Ethernet frame carries */
    o.udp.sources = 64;
    bool buffers_set = false;
    for (int i = 1; i < argc; i += 2) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) usage();
        if (!strcmp(f, "--ip")) o.ip = v;
        else if (!strcmp(f, "--netmask")) o.netmask = v;
        else if (!strcmp(f, "--gw")) o.gw = v;
        else if (!strcmp(f, "--refuse-writes")) o.refuse_writes = (unsigned)number(f, v, 1000000);
        else if (!strcmp(f, "--conns")) o.tcp.conns = (uint32_t)number(f, v, 65534);
        else if (!strcmp(f, "--buffers")) o.tcp.buffers = (uint32_t)number(f, v, 65534), buffers_set = true;
        else if (!strcmp(f, "--queue")) o.tcp.queue_size = (uint32_t)number(f, v, 1 << 24);
        else if (!strcmp(f, "--idle-ms")) o.tcp.idle_timeout_ms = number(f, v, UINT32_MAX);
        else usage();
    }
    if (!buffers_set) o.tcp.buffers = o.tcp.conns;
    return o;
}

static void *memory_for(size_t size) {
    void *mem = aligned_alloc(ECHOLOOP_ALIGN, (size + ECHOLOOP_ALIGN - 1) / ECHOLOOP_ALIGN * ECHOLOOP_ALIGN);
    if (mem == NULL) {
        fprintf(stderr, "echoloop-lwip: out of memory for %zu bytes\n", size);
        exit(1);
    }
    return mem;
}

static void parse_ip(const char *what, const char *text, ip4_addr_t *out) {
    if (!ip4addr_aton(text, out)) {
        fprintf(stderr, "echoloop-lwip: %s: not an IPv4 address: '%s'\n", what, text);
        exit(2);
    }
}

int main(int argc, char **argv) {
    struct options o = parse(argc, argv);
    size_t tcp_size, udp_size;
    enum echoloop_result r;
    void *tcp_mem, *udp_mem;
    if ((r = echoloop_server_size(&o.tcp, &tcp_size)) != ECHOLOOP_RESULT_OK) fail("sizes", r);
    if ((r = echoloop_udp_size(&o.udp, &udp_size)) != ECHOLOOP_RESULT_OK) fail("UDP sizes", r);
    tcp_mem = memory_for(tcp_size);
    udp_mem = memory_for(udp_size);
    if ((r = echoloop_server_init(tcp_mem, tcp_size, &o.tcp, &server)) != ECHOLOOP_RESULT_OK)
        fail("the server", r);
    if ((r = echoloop_udp_init(udp_mem, udp_size, &o.udp, &udp)) != ECHOLOOP_RESULT_OK)
        fail("the UDP echo", r);
    capacity = o.tcp.conns;
    refuse_every = o.refuse_writes;
    conns = calloc(capacity, sizeof *conns);
    ip4_addr_t ip, mask, gw;
    parse_ip("--ip", o.ip, &ip);
    parse_ip("--netmask", o.netmask, &mask);
    parse_ip("--gw", o.gw, &gw);
    if (conns == NULL) fail("the connection table", ECHOLOOP_RESULT_TOO_SMALL);

    /* The signals are taken by sigwait below: block them before lwIP starts its threads,
     * which inherit the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    static struct netif netif;
    tcpip_init(NULL, NULL);
    LOCK_TCPIP_CORE();
    /* tapif attaches to the TAP device named by PRECONFIGURED_TAPIF (serve sets it). */
    if (netif_add(&netif, &ip, &mask, &gw, NULL, tapif_init, tcpip_input) == NULL) {
        fprintf(stderr, "echoloop-lwip: the TAP netif did not start (is PRECONFIGURED_TAPIF a TAP device here?)\n");
        exit(1);
    }
    netif_set_default(&netif);
    netif_set_link_up(&netif);
    netif_set_up(&netif);
    struct tcp_pcb *listener = tcp_new_ip_type(IPADDR_TYPE_ANY);
    if (listener == NULL || tcp_bind(listener, IP_ANY_TYPE, ECHO_PORT) != ERR_OK ||
        (listener = tcp_listen_with_backlog(listener, 255)) == NULL) {
        fprintf(stderr, "echoloop-lwip: cannot listen on TCP port %d\n", ECHO_PORT);
        exit(1);
    }
    tcp_accept(listener, on_accept);
    udp_pcb = udp_new_ip_type(IPADDR_TYPE_ANY);
    if (udp_pcb == NULL || udp_bind(udp_pcb, IP_ANY_TYPE, ECHO_PORT) != ERR_OK) {
        fprintf(stderr, "echoloop-lwip: cannot bind UDP port %d\n", ECHO_PORT);
        exit(1);
    }
    udp_recv(udp_pcb, on_datagram, NULL);
    UNLOCK_TCPIP_CORE();
    fprintf(stderr,
            "echoloop-lwip: lwIP %s at %s:%d, TCP and UDP; echo: %u connections x %u B queue "
            "(%u buffers), core %zu B, UDP %zu B\n",
            LWIP_VERSION_STRING, o.ip, ECHO_PORT, (unsigned)o.tcp.conns, (unsigned)o.tcp.queue_size,
            (unsigned)o.tcp.buffers, tcp_size, udp_size);

    int sig = 0;
    sigwait(&stop, &sig);

    /* Stop gracefully: every queued byte is delivered, then a FIN; what the peers still
     * send is read and dropped until their own FIN or the grace period's end. A second
     * signal aborts. */
    LOCK_TCPIP_CORE();
    echoloop_shutdown(server, now_ms(), GRACE_MS);
    settle();
    UNLOCK_TCPIP_CORE();
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
    for (bool done = false; !done;) {
        if (sigtimedwait(&stop, NULL, &tick) > 0) break;
        echoloop_stats now;
        LOCK_TCPIP_CORE();
        done = echoloop_stats_get(server, &now) != ECHOLOOP_RESULT_OK || now.shut_down;
        UNLOCK_TCPIP_CORE();
    }
    LOCK_TCPIP_CORE();
    echoloop_abort(server); /* closes nothing once the shutdown is over */
    settle();
    echoloop_stats st;
    echoloop_udp_stats us;
    echoloop_stats_get(server, &st);
    echoloop_udp_stats_get(udp, &us);
    fprintf(stderr,
            "echoloop-lwip: stopped by signal %d; tcp: accepted %llu, refused %llu, bytes in %llu, "
            "out %llu, write retries %llu, closed: peer %llu, reset %llu, error %llu, idle %llu, "
            "shutdown %llu, shutdown timeout %llu, aborted %llu; udp: "
            "received %llu, echoed %llu, bytes %llu\n",
            sig, (unsigned long long)st.accepted, (unsigned long long)st.refused,
            (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out, write_retries,
            (unsigned long long)st.closed_peer_closed, (unsigned long long)st.closed_reset,
            (unsigned long long)st.closed_error, (unsigned long long)st.closed_idle_timeout,
            (unsigned long long)st.closed_shutdown, (unsigned long long)st.closed_shutdown_timeout,
            (unsigned long long)st.closed_aborted, (unsigned long long)us.received,
            (unsigned long long)us.echoed, (unsigned long long)us.bytes_out);
    UNLOCK_TCPIP_CORE();
    return 0;
}
