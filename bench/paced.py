#!/usr/bin/env python3
"""Many peers at a steady, slow pace: what an echo costs when few are ready at once.

For each server, interleaved over rounds: the server (pinned to one CPU) gets N
connections from this script (the other CPU), each sending one 64-byte message every
INTERVAL, spread evenly over the interval, and waiting for its echo (checked byte for
byte). This is the load the heat window's hold is for (host/src/poll/plan/heat.rs): every peer is
about to speak, yet any one `select` finds few of them ready. Reported per server: the
echo round trip's p50, p99 and worst, and the server's CPU per message.

    python3 bench/paced.py --server new=target/x86_64-unknown-linux-musl/release/echoloop \
        --server old=/tmp/echoloop-before --rounds 3

Writes a Markdown table on stdout (BENCHMARKS.md, "Defaults chosen by data", has the run).
Loopback only; every process it starts it stops.
"""

import argparse
import heapq
import os
import selectors
import shutil
import socket
import statistics
import time

# The comparison's own helpers: pinning, starting and stopping a server, the fd limit.
from compare import pinned, proc_cpu_ticks, raise_fd_limit, start_server, stop_server

PINS = shutil.which("taskset") is not None
MESSAGE_SIZE = 64
# Long enough for every connection's first message, which finds it cold, to be a small
# share of the run.
SETTLE = 1.5


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", action="append", required=True, metavar="NAME=PATH",
                   help="an echoloop binary to serve, by name; repeat to compare")
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--interval", type=float, default=0.2, help="seconds between messages")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args()


class Peer:
    """One connection: its socket, the message in flight and when it was sent."""

    def __init__(self, sock, index):
        self.sock = sock
        self.message = bytes((index + i) % 251 for i in range(MESSAGE_SIZE))
        self.sent_at = None
        self.got = b""


def load(addr, conns, interval, duration, settle=SETTLE):
    """Round trips in seconds, every echo checked."""
    host, port = addr.rsplit(":", 1)
    sel = selectors.DefaultSelector()
    peers = []
    for i in range(conns):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        peers.append(Peer(s, i))
        sel.register(s, selectors.EVENT_READ, peers[-1])
    time.sleep(settle)
    start = time.monotonic()
    end = start + duration
    due = [(start + interval * i / conns, i) for i in range(conns)]
    heapq.heapify(due)
    trips = []
    while time.monotonic() < end:
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, i = heapq.heappop(due)
            peer = peers[i]
            if peer.sent_at is None:  # else its last echo is late: skip a beat
                peer.sock.sendall(peer.message)
                peer.sent_at = time.monotonic()
            heapq.heappush(due, (at + interval, i))
        for key, _ in sel.select(max(0.0, min(due[0][0], end) - time.monotonic())):
            peer = key.data
            chunk = peer.sock.recv(MESSAGE_SIZE)
            if not chunk:
                raise RuntimeError("the server closed a connection")
            peer.got += chunk
            if len(peer.got) == MESSAGE_SIZE:
                if peer.got != peer.message:
                    raise RuntimeError("an echo differs from the message sent")
                trips.append(time.monotonic() - peer.sent_at)
                peer.sent_at, peer.got = None, b""
    for peer in peers:
        peer.sock.close()
    return trips


def run(binary, args):
    """(round trips in µs, server CPU µs per message) for one server run."""
    cmd = pinned([binary, "serve", "--listen", "127.0.0.1:0"], PINS and "0")
    proc, addr = start_server(cmd)
    if PINS:
        os.sched_setaffinity(0, {1})
    try:
        ticks0 = proc_cpu_ticks(proc.pid)
        trips = load(addr, args.conns, args.interval, args.duration)
        ticks1 = proc_cpu_ticks(proc.pid)
    finally:
        stop_server(proc)
    cpu_us = (ticks1 - ticks0) * 1e6 / os.sysconf("SC_CLK_TCK")
    return [t * 1e6 for t in trips], cpu_us / max(1, len(trips))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main():
    args = parse_args()
    raise_fd_limit(2 * args.conns + 100)
    servers = [s.split("=", 1) for s in args.server]
    results = {name: [] for name, _ in servers}
    for r in range(args.rounds):
        for name, binary in servers:
            trips, cpu = run(binary, args)
            row = (percentile(trips, 0.5), percentile(trips, 0.99), max(trips), cpu, len(trips))
            results[name].append(row)
            print(f"round {r + 1} {name}: {row[4]} echoes, p50 {row[0]:.0f} µs, "
                  f"p99 {row[1]:.0f} µs, worst {row[2]:.0f} µs; "
                  f"server CPU {row[3]:.1f} µs a message", flush=True)
    print()
    print(f"{args.conns} connections, one {MESSAGE_SIZE} B message each every "
          f"{args.interval * 1000:g} ms, {args.duration:g} s a run, medians of "
          f"{args.rounds} round(s):")
    print()
    print("| server | p50 | p99 | worst | server CPU per message |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"| {name} | {med[0]:,.0f} µs | {med[1]:,.0f} µs | {med[2]:,.0f} µs "
              f"| {med[3]:.1f} µs |")


if __name__ == "__main__":
    main()
