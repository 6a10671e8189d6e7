/* The C ABI of the echoloop core on its own, through echoloop.h alone: a simulated stack
 * feeds the server the seed's scenario and the fault cases, and every echoed byte is
 * compared. Built with -fsanitize=address,undefined by ports/ffi/Makefile (`make test`),
 * which .ci/ports.sh runs. Exit status 0: every check passed. */
#include "echoloop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#define OK(call) CHECK_RESULT(call, ECHOLOOP_RESULT_OK)
#define CHECK_RESULT(call, want)                                                  \
    do {                                                                          \
        enum echoloop_result got_ = (call);                                       \
        checks++;                                                                 \
        if (got_ != (want)) {                                                     \
            fprintf(stderr, "%s:%d: %s returned %d (%s), not %s\n", __FILE__, __LINE__, \
                    #call, (int)got_, echoloop_result_str(got_), #want);          \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

/* The server's invariants hold after every call that changes it. */
static void invariants(echoloop_server *s) {
    char why[128] = "";
    enum echoloop_result r = echoloop_check_invariants(s, why, sizeof why);
    checks++;
    if (r != ECHOLOOP_RESULT_OK) {
        fprintf(stderr, "invariant broken (%s): %s\n", echoloop_result_str(r), why);
        exit(1);
    }
}

/* ----- a simulated peer and its socket ----- */

struct peer {
    echoloop_conn_id id;
    const unsigned char *out; /* what the peer sends */
    size_t out_len, out_off;
    size_t chunk;             /* the most one receive takes: bytes arrive in parts */
    unsigned char echo[4096]; /* what came back */
    size_t echo_len;
    size_t room;              /* the most one send takes; 0: the peer never reads */
};

static size_t take_from_peer(void *user, uint8_t *buf, size_t len) {
    struct peer *p = user;
    size_t n = p->out_len - p->out_off;
    if (n > len) n = len;
    if (n > p->chunk) n = p->chunk;
    memcpy(buf, p->out + p->out_off, n);
    p->out_off += n;
    return n;
}

static size_t give_to_peer(void *user, const uint8_t *buf, size_t len) {
    struct peer *p = user;
    size_t n = len < p->room ? len : p->room;
    if (n > sizeof p->echo - p->echo_len) n = sizeof p->echo - p->echo_len;
    if (n > 0) memcpy(p->echo + p->echo_len, buf, n);
    p->echo_len += n;
    return n;
}

static size_t claim_too_much(void *user, uint8_t *buf, size_t len) {
    (void)user;
    (void)buf;
    return len + 1;
}

static echoloop_server *reentered_server;
static enum echoloop_result reentered_result;

static size_t call_back_in(void *user, uint8_t *buf, size_t len) {
    size_t q;
    (void)buf;
    (void)len;
    reentered_result = echoloop_queued(reentered_server, ((struct peer *)user)->id, &q);
    return 0;
}

/* Moves bytes both ways until nothing moves: what a driver does on readiness. */
static void pump(echoloop_server *s, uint64_t now, struct peer *p) {
    for (;;) {
        echoloop_interest in;
        size_t moved = 0, n;
        if (echoloop_conn_interest(s, p->id, &in) != ECHOLOOP_RESULT_OK) return;
        if (in.write) {
            OK(echoloop_send(s, now, p->id, give_to_peer, p, &n));
            moved += n;
        }
        if (in.read && p->out_off < p->out_len) {
            OK(echoloop_recv(s, now, p->id, take_from_peer, p, &n));
            moved += n;
        }
        invariants(s);
        if (moved == 0) return;
    }
}

static echoloop_action next_action(echoloop_server *s) {
    echoloop_action a;
    OK(echoloop_poll_action(s, &a));
    invariants(s);
    return a;
}

static void expect_close(echoloop_server *s, echoloop_conn_id id, enum echoloop_close_reason why,
                         bool graceful) {
    echoloop_action a = next_action(s);
    CHECK(a.kind == ECHOLOOP_ACTION_KIND_CLOSE);
    CHECK(a.id.index == id.index && a.id.generation == id.generation);
    CHECK(a.reason == why);
    CHECK(a.graceful == graceful);
    CHECK(next_action(s).kind == ECHOLOOP_ACTION_KIND_NONE);
}

static echoloop_server *make(void **mem, uint32_t conns, uint32_t buffers, uint32_t queue,
                             uint64_t idle_ms) {
    echoloop_config c = {.conns = conns, .buffers = buffers, .queue_size = queue,
                         .idle_timeout_ms = idle_ms};
    size_t size;
    echoloop_server *s = NULL;
    OK(echoloop_server_size(&c, &size));
    *mem = aligned_alloc(ECHOLOOP_ALIGN, (size + ECHOLOOP_ALIGN - 1) / ECHOLOOP_ALIGN * ECHOLOOP_ALIGN);
    CHECK(*mem != NULL);
    memset(*mem, 0xA5, size); /* the memory needs no initialising */
    OK(echoloop_server_init(*mem, size, &c, &s));
    return s;
}

static void destroy(echoloop_server *s, void *mem) {
    OK(echoloop_server_deinit(s));
    free(mem);
}

static echoloop_stats stats(echoloop_server *s) {
    echoloop_stats st;
    OK(echoloop_stats_get(s, &st));
    invariants(s);
    return st;
}

/* ----- the seed's scenario ----- */

static const char *const MESSAGES[] = {"This is the message 0", "It will be sent 1",
                                       "in parts 2", "in \xe4\xb8\xad\xe6\x96\x87" "3"};

/* Two clients, each sending the four messages in parts of 5 bytes through 16-byte
 * queues, their echoes taken 3 bytes at a time, interleaved; then EOF. */
static void seed_scenario(void) {
    void *mem;
    echoloop_server *s = make(&mem, 4, 4, 16, 0);
    static struct peer peers[2];
    unsigned char all[128];
    size_t total = 0;
    for (int m = 0; m < 4; m++) {
        memcpy(all + total, MESSAGES[m], strlen(MESSAGES[m]));
        total += strlen(MESSAGES[m]);
    }
    CHECK(total == 58);
    for (int i = 0; i < 2; i++) {
        peers[i] = (struct peer){.out = all, .out_len = 0, .chunk = 5, .room = 3};
        OK(echoloop_on_accepted(s, 0, &peers[i].id));
    }
    CHECK(peers[0].id.index != peers[1].id.index);
    for (int m = 0; m < 4; m++) {
        for (int i = 0; i < 2; i++) {
            /* The message arrives; the client waits for its echo in full. */
            peers[i].out_len += strlen(MESSAGES[m]);
            pump(s, 10 * (uint64_t)m, &peers[i]);
            CHECK(peers[i].echo_len == peers[i].out_len);
            CHECK(memcmp(peers[i].echo, all, peers[i].echo_len) == 0);
        }
    }
    for (int i = 0; i < 2; i++) {
        OK(echoloop_on_eof(s, 50, peers[i].id));
        expect_close(s, peers[i].id, ECHOLOOP_CLOSE_REASON_PEER_CLOSED, true);
        CHECK(peers[i].echo_len == 58 && memcmp(peers[i].echo, all, 58) == 0);
    }
    echoloop_stats st = stats(s);
    CHECK(st.accepted == 2 && st.closed_peer_closed == 2 && st.refused == 0);
    CHECK(st.bytes_in == 116 && st.bytes_out == 116 && st.bytes_discarded == 0);
    CHECK(st.peak_queue <= 16 && st.conns == 0 && st.free_buffers == 4);
    destroy(s, mem);
}

/* ----- fault cases ----- */

/* A peer that never reads fills its queue and is closed at the idle deadline; the other
 * connection is served meanwhile. */
static void never_reading_peer(void) {
    void *mem;
    echoloop_server *s = make(&mem, 2, 2, 16, 1000);
    static const unsigned char junk[64] = "never read, never read, never read, never read!";
    struct peer stuck = {.out = junk, .out_len = 64, .chunk = 64, .room = 0};
    struct peer fine = {.out = junk, .out_len = 40, .chunk = 7, .room = 64};
    uint64_t deadline;
    OK(echoloop_on_accepted(s, 0, &stuck.id));
    OK(echoloop_on_accepted(s, 0, &fine.id));
    pump(s, 100, &stuck);
    CHECK(stuck.out_off == 16 && stuck.echo_len == 0);
    echoloop_interest in;
    OK(echoloop_conn_interest(s, stuck.id, &in));
    CHECK(!in.read && in.write);
    for (uint64_t t = 200; t < 900; t += 100) {
        pump(s, t, &fine);
    }
    CHECK(fine.echo_len == 40 && memcmp(fine.echo, junk, 40) == 0);
    OK(echoloop_next_deadline(s, &deadline));
    CHECK(deadline == 1100); /* the stuck one's last activity, 100, plus 1000 */
    OK(echoloop_on_timeout(s, 1099));
    CHECK(next_action(s).kind == ECHOLOOP_ACTION_KIND_NONE);
    OK(echoloop_on_timeout(s, 1100));
    expect_close(s, stuck.id, ECHOLOOP_CLOSE_REASON_IDLE_TIMEOUT, false);
    CHECK(stats(s).bytes_discarded == 16);
    destroy(s, mem);
}

/* A reset discards the queue and closes at once; the stale id is refused after; the
 * slot is reused with the next generation. */
static void reset(void) {
    void *mem;
    echoloop_server *s = make(&mem, 1, 1, 32, 0);
    static const unsigned char bytes[] = "half a message";
    struct peer p = {.out = bytes, .out_len = 14, .chunk = 14, .room = 0};
    size_t n;
    OK(echoloop_on_accepted(s, 0, &p.id));
    pump(s, 0, &p);
    OK(echoloop_queued(s, p.id, &n));
    CHECK(n == 14);
    OK(echoloop_on_error(s, p.id, ECHOLOOP_ERROR_KIND_RESET));
    expect_close(s, p.id, ECHOLOOP_CLOSE_REASON_RESET, false);
    CHECK_RESULT(echoloop_recv(s, 0, p.id, take_from_peer, &p, &n), ECHOLOOP_RESULT_UNKNOWN_CONN);
    CHECK_RESULT(echoloop_on_error(s, p.id, 99), ECHOLOOP_RESULT_BAD_ARGUMENT);
    echoloop_conn_id again;
    OK(echoloop_on_accepted(s, 0, &again));
    CHECK(again.index == p.id.index && again.generation == p.id.generation + 1);
    echoloop_stats st = stats(s);
    CHECK(st.closed_reset == 1 && st.bytes_discarded == 14);
    destroy(s, mem);
}

/* EOF with bytes queued: no more reading, the echo is delivered, then a graceful close. */
static void half_close(void) {
    void *mem;
    echoloop_server *s = make(&mem, 1, 1, 8, 0);
    static const unsigned char msg[] = "0123456789abcdef";
    struct peer p = {.out = msg, .out_len = 16, .chunk = 16, .room = 0};
    size_t n;
    echoloop_interest in;
    OK(echoloop_on_accepted(s, 0, &p.id));
    pump(s, 0, &p); /* 8 of 16 queued: the queue is full */
    CHECK(p.out_off == 8);
    p.room = 3;
    pump(s, 0, &p);
    CHECK(p.echo_len == 16 && memcmp(p.echo, msg, 16) == 0);
    echoloop_conn_id extra;
    CHECK_RESULT(echoloop_on_accepted(s, 0, &extra), ECHOLOOP_RESULT_FULL); /* one slot */
    /* A second message, then EOF before its echo. */
    static const unsigned char last[] = "bye";
    struct peer q = p;
    q.out = last, q.out_len = 3, q.out_off = 0, q.room = 0, q.echo_len = 0;
    pump(s, 1, &q);
    OK(echoloop_on_eof(s, 1, q.id));
    CHECK(next_action(s).kind == ECHOLOOP_ACTION_KIND_NONE); /* its echo is still owed */
    CHECK_RESULT(echoloop_recv(s, 1, q.id, take_from_peer, &q, &n), ECHOLOOP_RESULT_READ_CLOSED);
    CHECK_RESULT(echoloop_on_eof(s, 1, q.id), ECHOLOOP_RESULT_READ_CLOSED);
    OK(echoloop_conn_interest(s, q.id, &in));
    CHECK(!in.read && in.write);
    q.room = 1;
    pump(s, 2, &q);
    CHECK(q.echo_len == 3 && memcmp(q.echo, "bye", 3) == 0);
    expect_close(s, q.id, ECHOLOOP_CLOSE_REASON_PEER_CLOSED, true);
    destroy(s, mem);
}

/* A full queue turns read interest off; sending part of it turns it back on, and the
 * bytes that wrap around the queue's end come back in order. */
static void full_queue(void) {
    void *mem;
    echoloop_server *s = make(&mem, 1, 1, 16, 0);
    static unsigned char stream[100];
    for (size_t i = 0; i < sizeof stream; i++) stream[i] = (unsigned char)(i * 7 + 1);
    struct peer p = {.out = stream, .out_len = sizeof stream, .chunk = 100, .room = 0};
    size_t n;
    echoloop_interest in;
    OK(echoloop_on_accepted(s, 0, &p.id));
    OK(echoloop_recv(s, 0, p.id, take_from_peer, &p, &n));
    CHECK(n == 16);
    CHECK_RESULT(echoloop_recv(s, 0, p.id, take_from_peer, &p, &n), ECHOLOOP_RESULT_QUEUE_FULL);
    OK(echoloop_conn_interest(s, p.id, &in));
    CHECK(!in.read && in.write);
    p.room = 5;
    for (int round = 0; round < 40 && p.echo_len < sizeof stream; round++) {
        pump(s, 0, &p);
    }
    CHECK(p.echo_len == sizeof stream && memcmp(p.echo, stream, sizeof stream) == 0);
    /* A callback claiming more than it was lent is refused and changes nothing. */
    CHECK_RESULT(echoloop_recv(s, 0, p.id, claim_too_much, NULL, &n), ECHOLOOP_RESULT_OVERCLAIMED);
    OK(echoloop_queued(s, p.id, &n));
    CHECK(n == 0);
    /* A callback may not call back into its own server. */
    reentered_server = s;
    OK(echoloop_recv(s, 0, p.id, call_back_in, &p, &n));
    CHECK(reentered_result == ECHOLOOP_RESULT_REENTERED && n == 0);
    destroy(s, mem);
}

/* Four connections share two buffers: the third with bytes to send waits for one, and
 * gets it once another queue drains; a fifth connection is refused. */
static void pool_runs_out(void) {
    void *mem;
    echoloop_server *s = make(&mem, 4, 2, 8, 0);
    static const unsigned char msg[] = "abcdefgh";
    struct peer p[4];
    size_t n;
    echoloop_interest in;
    for (int i = 0; i < 4; i++) {
        p[i] = (struct peer){.out = msg, .out_len = 8, .chunk = 8, .room = 0};
        OK(echoloop_on_accepted(s, 0, &p[i].id));
    }
    echoloop_conn_id extra;
    CHECK_RESULT(echoloop_on_accepted(s, 0, &extra), ECHOLOOP_RESULT_FULL);
    bool accept = true;
    OK(echoloop_listener_interest(s, &accept));
    CHECK(!accept);
    pump(s, 0, &p[0]);
    pump(s, 0, &p[1]);
    CHECK(stats(s).free_buffers == 0);
    OK(echoloop_conn_interest(s, p[2].id, &in));
    CHECK(!in.read);
    CHECK_RESULT(echoloop_recv(s, 0, p[2].id, take_from_peer, &p[2], &n), ECHOLOOP_RESULT_NO_BUFFER);
    CHECK(p[2].out_off == 0);
    p[0].room = 8;
    pump(s, 1, &p[0]);
    CHECK(p[0].echo_len == 8 && stats(s).free_buffers == 1);
    OK(echoloop_conn_interest(s, p[2].id, &in));
    CHECK(in.read);
    p[2].room = 8;
    pump(s, 2, &p[2]);
    CHECK(p[2].echo_len == 8 && memcmp(p[2].echo, msg, 8) == 0);
    echoloop_stats st = stats(s);
    CHECK(st.refused == 1 && st.accepted == 4);
    /* Abort closes every connection with a RST. */
    OK(echoloop_abort(s));
    int closes = 0;
    for (echoloop_action a = next_action(s); a.kind != ECHOLOOP_ACTION_KIND_NONE; a = next_action(s)) {
        CHECK(a.kind == ECHOLOOP_ACTION_KIND_CLOSE && !a.graceful);
        closes++;
    }
    CHECK(closes == 4 && stats(s).shut_down);
    destroy(s, mem);
}

/* Every pointer and size is checked; a dead handle is refused. */
static void bad_arguments(void) {
    echoloop_config c = {.conns = 4, .buffers = 2, .queue_size = 64, .idle_timeout_ms = 0};
    size_t size;
    echoloop_server *s = NULL;
    CHECK_RESULT(echoloop_server_size(NULL, &size), ECHOLOOP_RESULT_NULL_POINTER);
    CHECK_RESULT(echoloop_server_size(&c, NULL), ECHOLOOP_RESULT_NULL_POINTER);
    OK(echoloop_server_size(&c, &size));
    CHECK(size % ECHOLOOP_ALIGN == 0 && echoloop_align() == ECHOLOOP_ALIGN);
    /* Room for the misfit configurations below too. */
    unsigned char *mem = aligned_alloc(ECHOLOOP_ALIGN, 4 * size);
    CHECK(mem != NULL);
    CHECK_RESULT(echoloop_server_init(NULL, size, &c, &s), ECHOLOOP_RESULT_NULL_POINTER);
    CHECK_RESULT(echoloop_server_init(mem, size, &c, NULL), ECHOLOOP_RESULT_NULL_POINTER);
    CHECK_RESULT(echoloop_server_init(mem + 1, size, &c, &s), ECHOLOOP_RESULT_MISALIGNED);
    CHECK_RESULT(echoloop_server_init(mem, size - 1, &c, &s), ECHOLOOP_RESULT_TOO_SMALL);
    echoloop_config bad = c;
    bad.buffers = 5;
    OK(echoloop_server_size(&bad, &size));
    CHECK_RESULT(echoloop_server_init(mem, size, &bad, &s), ECHOLOOP_RESULT_BAD_CONFIG);
    bad = c;
    bad.conns = 0;
    CHECK_RESULT(echoloop_server_init(mem, size, &bad, &s), ECHOLOOP_RESULT_BAD_CONFIG);
    bad = c;
    bad.buffers = 65535;
    bad.conns = 65535;
    bad.queue_size = UINT32_MAX;
    if (sizeof(size_t) == 4) CHECK_RESULT(echoloop_server_size(&bad, &size), ECHOLOOP_RESULT_BAD_CONFIG);
    CHECK(s == NULL);
    OK(echoloop_server_size(&c, &size));
    OK(echoloop_server_init(mem, size, &c, &s));
    echoloop_conn_id id;
    CHECK_RESULT(echoloop_on_accepted(s, 0, NULL), ECHOLOOP_RESULT_NULL_POINTER);
    CHECK(stats(s).accepted == 0); /* nothing accepted for a NULL id */
    OK(echoloop_on_accepted(s, 0, &id));
    CHECK_RESULT(echoloop_recv(s, 0, id, NULL, NULL, NULL), ECHOLOOP_RESULT_NULL_POINTER);
    CHECK_RESULT(echoloop_send(NULL, 0, id, give_to_peer, NULL, NULL), ECHOLOOP_RESULT_NULL_POINTER);
    CHECK_RESULT(echoloop_poll_action(s, NULL), ECHOLOOP_RESULT_NULL_POINTER);
    echoloop_conn_id forged = {.index = 3, .generation = 0};
    CHECK_RESULT(echoloop_on_eof(s, 0, forged), ECHOLOOP_RESULT_UNKNOWN_CONN);
    forged = (echoloop_conn_id){.index = 60000, .generation = 0};
    CHECK_RESULT(echoloop_on_eof(s, 0, forged), ECHOLOOP_RESULT_UNKNOWN_CONN);
    OK(echoloop_server_deinit(s));
    CHECK_RESULT(echoloop_on_eof(s, 0, id), ECHOLOOP_RESULT_BAD_HANDLE);
    CHECK_RESULT(echoloop_server_deinit(s), ECHOLOOP_RESULT_BAD_HANDLE);
    CHECK(strcmp(echoloop_result_str(ECHOLOOP_RESULT_FULL), "connection table is full") == 0);
    CHECK(strcmp(echoloop_result_str(1000), "unknown result") == 0);
    free(mem);
}

/* ----- UDP ----- */

struct datagrams {
    unsigned char data[2048];
    size_t len;
    echoloop_endpoint from;
    bool pending;
    unsigned char echo[2048];
    size_t echo_len;
    echoloop_endpoint to;
    int refuse; /* send results to return first: WOULD_BLOCK */
};

static uint32_t udp_take(void *user, uint8_t *buf, size_t len, echoloop_endpoint *from,
                         size_t *dlen) {
    struct datagrams *d = user;
    if (!d->pending) return ECHOLOOP_UDP_RECV_KIND_NOTHING;
    d->pending = false;
    *from = d->from;
    *dlen = d->len;
    memcpy(buf, d->data, d->len < len ? d->len : len);
    return ECHOLOOP_UDP_RECV_KIND_DATAGRAM;
}

static uint32_t udp_give(void *user, const uint8_t *buf, size_t len, const echoloop_endpoint *to) {
    struct datagrams *d = user;
    if (d->refuse > 0) {
        d->refuse--;
        return ECHOLOOP_UDP_SEND_RESULT_WOULD_BLOCK;
    }
    if (len > 0) memcpy(d->echo, buf, len);
    d->echo_len = len;
    d->to = *to;
    return ECHOLOOP_UDP_SEND_RESULT_SENT;
}

static void udp_echo(void) {
    echoloop_udp_config c;
    size_t size;
    echoloop_udp *u = NULL;
    OK(echoloop_udp_config_default(&c));
    c.slots = 4, c.slot_size = 1472, c.sources = 8;
    OK(echoloop_udp_size(&c, &size));
    void *mem = aligned_alloc(ECHOLOOP_ALIGN, size);
    CHECK(mem != NULL);
    OK(echoloop_udp_init(mem, size, &c, &u));
    static struct datagrams d;
    d.from = (echoloop_endpoint){.family = 4, .port = 40000, .addr = {10, 0, 7, 1}};
    enum echoloop_udp_verdict v;
    enum echoloop_udp_sent sent;
    const size_t sizes[] = {0, 1, 64, 1471, 1472};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        for (size_t k = 0; k < sizes[i]; k++) d.data[k] = (unsigned char)(k * 31 + i);
        d.len = sizes[i];
        d.pending = true;
        d.refuse = i == 2 ? 2 : 0;
        OK(echoloop_udp_recv(u, 0, udp_take, &d, &v));
        CHECK(v == ECHOLOOP_UDP_VERDICT_QUEUED);
        for (int tries = 0; tries < 3; tries++) {
            OK(echoloop_udp_send(u, udp_give, &d, &sent));
            if (sent != ECHOLOOP_UDP_SENT_WOULD_BLOCK) break;
        }
        CHECK(sent == ECHOLOOP_UDP_SENT_SENT);
        CHECK(d.echo_len == sizes[i] && memcmp(d.echo, d.data, sizes[i]) == 0);
        CHECK(d.to.family == 4 && d.to.port == 40000 && memcmp(d.to.addr, d.from.addr, 4) == 0);
    }
    OK(echoloop_udp_send(u, udp_give, &d, &sent));
    CHECK(sent == ECHOLOOP_UDP_SENT_IDLE);
    d.len = 1473, d.pending = true;
    OK(echoloop_udp_recv(u, 0, udp_take, &d, &v));
    CHECK(v == ECHOLOOP_UDP_VERDICT_DROPPED_TRUNCATED);
    d.len = 5, d.pending = true, d.from.port = 19; /* chargen: never answered */
    OK(echoloop_udp_recv(u, 0, udp_take, &d, &v));
    CHECK(v == ECHOLOOP_UDP_VERDICT_DROPPED_LOOP_GUARD);
    d.from.port = 40001;
    for (int i = 0; i < 4; i++) { /* 3 wait, the 4th finds the queue full */
        d.len = 5, d.pending = true;
        OK(echoloop_udp_recv(u, 0, udp_take, &d, &v));
        CHECK(v == (i < 3 ? ECHOLOOP_UDP_VERDICT_QUEUED : ECHOLOOP_UDP_VERDICT_DROPPED_QUEUE_FULL));
    }
    d.from.family = 5, d.pending = true;
    CHECK_RESULT(echoloop_udp_recv(u, 0, udp_take, &d, &v), ECHOLOOP_RESULT_BAD_ARGUMENT);
    echoloop_udp_stats st;
    OK(echoloop_udp_stats_get(u, &st));
    CHECK(st.received == 11 && st.echoed == 5 && st.queued == 3);
    CHECK(st.dropped_truncated == 1 && st.dropped_loop_guard == 1 && st.dropped_queue_full == 1);
    CHECK(st.bytes_out == 0 + 1 + 64 + 1471 + 1472);
    CHECK_RESULT(echoloop_server_deinit((echoloop_server *)u), ECHOLOOP_RESULT_BAD_HANDLE);
    OK(echoloop_udp_deinit(u));
    free(mem);
}

int main(void) {
    seed_scenario();
    never_reading_peer();
    reset();
    half_close();
    full_queue();
    pool_runs_out();
    bad_arguments();
    udp_echo();
    printf("abi: %d checks passed\n", checks);
    return 0;
}
