#!/usr/bin/env python3
"""The seed tutorial's select server, ported to Python 3: a benchmark baseline.

Kept as the tutorial wrote it: select.select(inputs, outputs, inputs), non-blocking
sockets, one queue.Queue per client, recv(1024), one queued chunk sent per writable
round, "exceptional" closes the connection. Changed, and why:
  * no sleep(1) at the end of each round (the tutorial says to remove it);
  * its per-event prints are off unless -v (printing every message would measure print());
  * listen(511) instead of listen(5), as the other servers, so 500 clients can connect;
  * the part of a chunk that send() did not take is sent first next round instead of
    being dropped (the tutorial loses it), so the benchmark's byte checks can pass;
  * binds the address given (default 127.0.0.1:0) and prints "listening on ADDR".

usage: seed_server.py [HOST:PORT] [-v]
"""
import queue
import select
import socket
import sys

verbose = "-v" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a != "-v"]
host, _, port = (args[0] if args else "127.0.0.1:0").rpartition(":")


def log(*what):
    if verbose:
        print(*what)


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.setblocking(0)
server.bind((host, int(port)))
server.listen(511)
print("listening on %s:%d" % server.getsockname(), flush=True)

inputs = [server]
outputs = []
message_queues = {}
unsent = {}  # the tail of a chunk send() did not take


def close(s):
    if s in outputs:
        outputs.remove(s)
    inputs.remove(s)
    s.close()
    del message_queues[s]
    unsent.pop(s, None)


while inputs:
    log("waiting for the next event")
    readable, writable, exceptional = select.select(inputs, outputs, inputs)
    for s in readable:
        if s is server:
            connection, client_address = s.accept()
            log("connection from", client_address)
            connection.setblocking(0)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            inputs.append(connection)
            message_queues[connection] = queue.Queue()
        else:
            try:
                data = s.recv(1024)
            except ConnectionError:
                data = b""
            if data:
                if verbose:
                    log('received "%s" from %s' % (data, s))
                message_queues[s].put(data)
                if s not in outputs:
                    outputs.append(s)
            else:
                log("closing", s)
                close(s)
    for s in writable:
        if s not in message_queues:
            continue  # closed above, this round
        send_data = unsent.pop(s, None)
        if send_data is None:
            try:
                send_data = message_queues[s].get_nowait()
            except queue.Empty:
                outputs.remove(s)
                continue
        try:
            sent = s.send(send_data)
        except BlockingIOError:
            sent = 0
        except ConnectionError:
            close(s)
            continue
        if sent < len(send_data):
            unsent[s] = send_data[sent:]
    for s in exceptional:
        if s not in message_queues:
            continue
        log("exception condition on", s)
        close(s)
