#!/usr/bin/env python3
"""What the sweep costs a connection that wakes up: its first message after a long quiet.

For each server, interleaved over rounds: the server (pinned to one CPU) holds 100 busy
ping-pong connections and 9,900 idle ones from `echoloop-bench` (the other CPU), as the
comparison's "10,000 open, 100 busy" case. Beside them this script opens a few probe
connections, lets them go quiet for 1.5 s (cold: no byte for over a second), then sends
one message on each at once and times its echo; three times a round. Reported per server:
the median and worst of those round trips, and the busy connections' p99 over the run.

    python3 bench/cold_wake.py --server new=target/x86_64-unknown-linux-musl/release/echoloop \
        --server old=/tmp/echoloop-before --load-generator target/release/echoloop-bench --rounds 3

Writes a Markdown table on stdout (BENCHMARKS.md, "Defaults chosen by data", has the run).
Loopback only; every process it starts it stops.
"""

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import time

# The comparison's own helpers: pinning, starting and stopping a server, the fd limit.
from compare import pinned, raise_fd_limit, start_server, stop_server

PINS = shutil.which("taskset") is not None

BUSY, IDLE, PROBES = 100, 9_900, 10
QUIET = 1.5
MESSAGE = b"wake-up!"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", action="append", required=True, metavar="NAME=PATH",
                   help="an echoloop binary to serve, by name; repeat to compare")
    p.add_argument("--load-generator", required=True, help="the echoloop-bench binary to load with")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args()


def wake(probes):
    """Sends MESSAGE on every probe at once; each echo's round trip in ms."""
    start = time.perf_counter()
    for s in probes:
        s.sendall(MESSAGE)
    times = []
    for s in probes:
        got = b""
        while len(got) < len(MESSAGE):
            chunk = s.recv(len(MESSAGE) - len(got))
            if not chunk:
                raise RuntimeError("a probe connection closed")
            got += chunk
        if got != MESSAGE:
            raise RuntimeError(f"probe echo mismatch: {got!r}")
        times.append((time.perf_counter() - start) * 1000)
    return times


def run(binary, load_generator):
    """(probe round trips in ms, busy p99 in µs) for one server run."""
    cmd = pinned([binary, "serve", "--listen", "127.0.0.1:0",
                  "--max-conns", str(BUSY + IDLE + PROBES)], PINS and "0")
    proc, addr = start_server(cmd)
    host, port = addr.rsplit(":", 1)
    duration = 3 * (QUIET + 0.5) + 3
    load = subprocess.Popen(
        pinned([load_generator, "--connect", addr, "--conns", str(BUSY),
                "--idle", str(IDLE), "--size", "64", "--duration", str(duration),
                "--warmup", "1"], PINS and "1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)  # the idle connections are open and have gone cold
        probes = [socket.create_connection((host, int(port)), timeout=10) for _ in range(PROBES)]
        times = []
        for _ in range(3):
            time.sleep(QUIET)
            times += wake(probes)
        for s in probes:
            s.close()
        out, _ = load.communicate(timeout=duration + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        stop_server(proc)
    p99 = re.search(r"p99 ([0-9.]+) µs", out)
    if load.returncode != 0 or not p99:
        raise RuntimeError(f"echoloop-bench failed:\n{out}")
    return times, float(p99.group(1))


def main():
    args = parse_args()
    raise_fd_limit(2 * (BUSY + IDLE + PROBES) + 100)
    servers = [s.split("=", 1) for s in args.server]
    results = {name: ([], []) for name, _ in servers}
    for r in range(args.rounds):
        for name, binary in servers:
            times, p99 = run(binary, args.load_generator)
            results[name][0].extend(times)
            results[name][1].append(p99)
            print(f"round {r + 1} {name}: wake median {statistics.median(times):.1f} ms, "
                  f"worst {max(times):.1f} ms; busy p99 {p99:.0f} µs", flush=True)
    print()
    print("| server | wake-up round trip, median | worst | busy p99 (median of rounds) |")
    print("|---|---:|---:|---:|")
    for name, (times, p99s) in results.items():
        print(f"| {name} | {statistics.median(times):.1f} ms | {max(times):.1f} ms "
              f"| {statistics.median(p99s):,.0f} µs |")


if __name__ == "__main__":
    main()
