#!/usr/bin/env python3
"""How `--accepts-per-round` trades a burst of new connections against the open ones.

For each value, interleaved over rounds: echoloop serves (pinned to one CPU) 50 busy
ping-pong connections from `echoloop-bench` (the other CPU); in the middle of the run this
script opens a burst of connections at once (all in the listen backlog together), each
sends 8 bytes and waits for their echo. Reported: how long until every burst connection
had its echo (the burst's cost to newcomers) and the busy connections' p99.9 and worst
round trip over the run (its cost to those already served), medians over the rounds.

    python3 bench/accept_burst.py --echoloop target/release/echoloop \
        --load-generator target/release/echoloop-bench \
        --values 1,8,64,512,4096 --burst 2000 --rounds 5

Writes a Markdown table on stdout (BENCHMARKS.md, "Defaults chosen by data", has the run).
Loopback only; every process it starts it stops.
"""

import argparse
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import time

# The comparison's own helpers: pinning, starting and stopping a server, the fd limit.
from compare import DEFAULT_LOAD_GENERATOR, pinned, raise_fd_limit, start_server, stop_server

PINS = shutil.which("taskset") is not None

MESSAGE = b"burst-42"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--echoloop", required=True, help="the echoloop binary (release)")
    p.add_argument("--load-generator", metavar="PATH", default=DEFAULT_LOAD_GENERATOR,
                   help="the echoloop-bench binary (default: %(default)s)")
    p.add_argument("--values", default="1,8,64,512,4096",
                   help="comma-separated --accepts-per-round values")
    p.add_argument("--burst", type=int, default=2000, help="connections in the burst")
    p.add_argument("--busy", type=int, default=50, help="busy ping-pong connections")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0, help="seconds of busy load a run")
    return p.parse_args()


def serve(binary, value):
    """(process, (host, port)): echoloop serving on a free loopback port, pinned to CPU 0."""
    cmd = pinned([binary, "serve", "--listen", "127.0.0.1:0",
                  "--accepts-per-round", str(value)], PINS and "0")
    proc, addr = start_server(cmd)
    host, port = addr.rsplit(":", 1)
    return proc, (host, int(port))


def burst(addr, n, timeout=30.0):
    """Opens n connections at once, sends each MESSAGE, waits for every echo; seconds."""
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(addr)
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, bytearray())
    pending = n
    deadline = start + timeout
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit("accept_burst: %d of %d burst connections got no echo" % (pending, n))
        for key, events in sel.select(timeout=1.0):
            s, got = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                s.send(MESSAGE)
                sel.modify(s, selectors.EVENT_READ, got)
                continue
            got += s.recv(64)
            if len(got) >= len(MESSAGE):
                if bytes(got) != MESSAGE:
                    raise SystemExit("accept_burst: an echo differs from what was sent")
                sel.unregister(s)
                pending -= 1
    took = time.monotonic() - start
    for s in socks:
        s.close()
    return took


def run_one(args, value):
    proc, addr = serve(args.echoloop, value)
    try:
        load = subprocess.Popen(pinned([
            args.load_generator, "--connect", "%s:%d" % addr, "--conns", str(args.busy),
            "--duration", str(args.duration), "--warmup", "0.5", "--json"], PINS and "1"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5 + args.duration / 2)
        took = burst(addr, args.burst)
        out, err = load.communicate(timeout=args.duration + 30)
        if load.returncode != 0:
            raise SystemExit("accept_burst: echoloop-bench failed: %s" % err.strip())
        r = json.loads(out)
        return {"burst_ms": took * 1e3, "p999_us": r["latency_us"]["p999"],
                "max_us": r["latency_us"]["max"], "msg_per_s": r["messages_per_sec"]}
    finally:
        stop_server(proc)


def main():
    args = parse_args()
    values = [int(v) for v in args.values.split(",")]
    raise_fd_limit(args.burst + args.busy + 64)
    if PINS:
        os.sched_setaffinity(0, {1})
    runs = {v: [] for v in values}
    for rnd in range(args.rounds):
        order = values[rnd % len(values):] + values[:rnd % len(values)]
        for v in order:
            r = run_one(args, v)
            runs[v].append(r)
            print("round %d  --accepts-per-round %-5d burst %.1f ms, busy p99.9 %.0f µs, "
                  "max %.0f µs" % (rnd + 1, v, r["burst_ms"], r["p999_us"], r["max_us"]),
                  flush=True)
    print()
    print("%d busy ping-pong connections, a burst of %d new ones mid-run; medians of %d "
          "rounds (min–max)." % (args.busy, args.burst, args.rounds))
    print()
    print("| --accepts-per-round | burst: all echoed, ms | busy p99.9 µs | busy max µs "
          "| busy msg/s |")
    print("|---:|---:|---:|---:|---:|")
    for v in values:
        cells = []
        for key, f in (("burst_ms", "%.1f"), ("p999_us", "%.0f"), ("max_us", "%.0f"),
                       ("msg_per_s", "%.0f")):
            xs = [r[key] for r in runs[v]]
            cells.append((f + " (" + f + "–" + f + ")") % (statistics.median(xs), min(xs),
                                                            max(xs)))
        print("| %d | %s |" % (v, " | ".join(cells)))


if __name__ == "__main__":
    main()
