/* bare-echo: the smallest honest echo server on lwIP's raw API, TCP and UDP on port 7,
 * with no echoloop in it: written here, in the manner of lwIP's contrib apps
 * tcpecho_raw and udpecho_raw, as the baseline `make sizes` measures echoloop-lwip
 * against. Each connection keeps the pbufs it could not write yet (its queue is lwIP's
 * receive window); ERR_MEM is retried from sent and poll. Not run by the tests. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/netif.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/udp.h"
#include "netif/tapif.h"

struct echo {
    struct tcp_pcb *pcb;
    struct pbuf *queue; /* received, not yet written */
    int fin;
};

static void echo_free(struct echo *e) {
    if (e->queue) pbuf_free(e->queue);
    free(e);
}

static void drain(struct echo *e) {
    while (e->queue) {
        struct pbuf *p = e->queue;
        if (p->len > tcp_sndbuf(e->pcb) || tcp_write(e->pcb, p->payload, p->len, TCP_WRITE_FLAG_COPY) != ERR_OK)
            break; /* ERR_MEM: retried from sent or poll */
        e->queue = p->next;
        if (e->queue) pbuf_ref(e->queue);
        tcp_recved(e->pcb, p->len);
        pbuf_free(p);
    }
    tcp_output(e->pcb);
    if (e->fin && !e->queue) {
        tcp_arg(e->pcb, NULL);
        tcp_recv(e->pcb, NULL);
        tcp_sent(e->pcb, NULL);
        tcp_poll(e->pcb, NULL, 0);
        tcp_err(e->pcb, NULL);
        if (tcp_close(e->pcb) != ERR_OK) tcp_abort(e->pcb);
        echo_free(e);
    }
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    struct echo *e = arg;
    (void)pcb;
    (void)err;
    if (p == NULL) e->fin = 1;
    else if (e->queue) pbuf_cat(e->queue, p);
    else e->queue = p;
    drain(e);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len) {
    (void)pcb;
    (void)len;
    drain(arg);
    return ERR_OK;
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb) {
    (void)pcb;
    drain(arg);
    return ERR_OK;
}

static void on_err(void *arg, err_t err) {
    (void)err;
    echo_free(arg);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    (void)arg;
    if (err != ERR_OK || pcb == NULL) return ERR_VAL;
    struct echo *e = calloc(1, sizeof *e);
    if (e == NULL) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    e->pcb = pcb;
    tcp_arg(pcb, e);
    tcp_nagle_disable(pcb);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_poll(pcb, on_poll, 1);
    tcp_err(pcb, on_err);
    return ERR_OK;
}

static void on_datagram(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr, u16_t port) {
    (void)arg;
    udp_sendto(pcb, p, addr, port);
    pbuf_free(p);
}

int main(void) {
    static struct netif netif;
    ip4_addr_t ip, mask, gw;
    sigset_t stop;
    int sig;
    IP4_ADDR(&ip, 10, 0, 7, 2);
    IP4_ADDR(&mask, 255, 255, 255, 0);
    IP4_ADDR(&gw, 10, 0, 7, 1);
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    tcpip_init(NULL, NULL);
    LOCK_TCPIP_CORE();
    netif_add(&netif, &ip, &mask, &gw, NULL, tapif_init, tcpip_input);
    netif_set_default(&netif);
    netif_set_link_up(&netif);
    netif_set_up(&netif);
    struct tcp_pcb *listener = tcp_new_ip_type(IPADDR_TYPE_ANY);
    tcp_bind(listener, IP_ANY_TYPE, 7);
    listener = tcp_listen(listener);
    tcp_accept(listener, on_accept);
    struct udp_pcb *udp = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(udp, IP_ANY_TYPE, 7);
    udp_recv(udp, on_datagram, NULL);
    UNLOCK_TCPIP_CORE();
    sigwait(&stop, &sig);
    return 0;
}
