#!/usr/bin/env python3
"""Runs the same load against echoloop and its peers, in interleaved rounds, and writes a
Markdown table, JSON and an SVG chart.

Called by bench/run.sh, which builds the binaries first; see BENCHMARKS.md. Standard
library only, so it runs on a fresh machine with python3.

Per server and case, over the whole `echoloop-bench` run against a freshly started server
(connect, warm-up, measured window, close):
  * server CPU per round trip: utime+stime from /proc/PID/stat (every thread's) / round
    trips of the run; and per GB echoed;
  * server syscalls per round trip: `perf stat -e raw_syscalls:sys_enter -p PID` / round
    trips of the run ("n/a" when perf cannot count them, and in --smoke);
  * peak RSS: VmHWM from /proc/PID/status after the run (and VmRSS idle and under load);
and from the measured window only: throughput and latency percentiles.
Server and load generator are pinned to different CPUs with taskset when there are two.

A server that cannot hold a case (refuses or resets connections, never serves some,
drops idle ones, or dies) shows "n/a" with the reason; that fails the run only at 1,000
connections or fewer, which every server here holds (select's FD_SETSIZE is 1024). Any
echo that differs from what was sent fails the run.

The UDP cases ping-pong datagrams (`echoloop-bench --udp`) against the servers that serve
UDP echo: `echoloop serve --udp ADDR:PORT` (its `listening on udp ADDR:PORT` line gives the
port) and `tokio-echo --udp`. A server without UDP shows "n/a" (not a failure): the C and
Python peers, and an echoloop whose `serve` has no `--udp` yet.

The targets table gives each ratio twice: the medians' (echoloop's median over the best
peer's) and round by round (in each round, echoloop over the best peer of that same round;
their median and range). On a shared machine whole rounds run fast or slow for every
server; the round-by-round range shows how far a verdict is from the noise.

`python3 bench/compare.py --render DIR` writes DIR/results.md and the chart again from
DIR/results.json, running nothing (after a change to how results are shown).
"""
import argparse
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# (name, mode, busy connections, size, idle connections)
CASES = [
    ("pingpong 1 x 64 B", "pingpong", 1, 64, 0),
    ("pingpong 50 x 64 B", "pingpong", 50, 64, 0),
    ("pingpong 500 x 64 B", "pingpong", 500, 64, 0),
    ("pingpong 50 x 4 KiB", "pingpong", 50, 4096, 0),
    ("stream 1 x 64 KiB", "stream", 1, 65536, 0),
    ("stream 50 x 16 KiB", "stream", 50, 16384, 0),
    ("stream 50 x 64 KiB", "stream", 50, 65536, 0),
    ("pingpong 5,000 x 64 B", "pingpong", 5000, 64, 0),
    ("pingpong 10,000 x 64 B", "pingpong", 10000, 64, 0),
    ("10,000 open, 100 busy x 64 B", "pingpong", 100, 64, 9900),
    ("udp 1 x 64 B", "udp", 1, 64, 0),
    ("udp 16 x 64 B", "udp", 16, 64, 0),
    # Many peers each speaking now and then (bench/paced.py): one 64 B message every
    # 200 ms on each of 1,000 connections, every echo checked.
    ("paced 1,000 x 64 B / 200 ms", "paced", 1000, 64, 0),
    # A connection waking among 10,000 (bench/cold_wake.py): 100 busy, the rest idle, and
    # 10 probes quiet for 1.5 s, then each sends 8 bytes; p50/p99 are the probes' echoes.
    ("cold wake among 10,000", "coldwake", 100, 64, 9890),
]
# --smoke: every case, small. Above 1,000 connections it still crosses select's limit,
# so the "n/a" path is exercised too.
SMOKE_CASES = [
    ("pingpong 1 x 64 B", "pingpong", 1, 64, 0),
    ("pingpong 20 x 64 B", "pingpong", 20, 64, 0),
    ("pingpong 200 x 64 B", "pingpong", 200, 64, 0),
    ("pingpong 20 x 4 KiB", "pingpong", 20, 4096, 0),
    ("stream 1 x 64 KiB", "stream", 1, 65536, 0),
    ("stream 10 x 16 KiB", "stream", 10, 16384, 0),
    ("stream 10 x 64 KiB", "stream", 10, 65536, 0),
    ("pingpong 1,100 x 64 B", "pingpong", 1100, 64, 0),
    ("pingpong 1,200 x 64 B", "pingpong", 1200, 64, 0),
    ("1,200 open, 10 busy x 64 B", "pingpong", 10, 64, 1190),
    ("udp 1 x 64 B", "udp", 1, 64, 0),
    ("udp 16 x 64 B", "udp", 16, 64, 0),
    ("paced 100 x 64 B / 200 ms", "paced", 100, 64, 0),
    ("cold wake among 1,000", "coldwake", 10, 64, 980),
]
# Every server holds this many connections; above it, "n/a" is an answer, not a failure.
ALL_HOLD = 1000
# Servers whose names start with this are echoloop builds; the rest are its peers.
# "echoloop" itself serves with the default backend, select.
OURS = "echoloop"
# The same build on the epoll backend: the other server whose targets are checked.
EPOLL = "echoloop-epoll"
# The peers that serve UDP echo (echoloop builds do once `serve` takes `--udp`).
UDP_PEERS = ("tokio", "tokio-mt", "tokio-16k")


class NoUdp(Exception):
    """The server has no UDP echo: its UDP cases are "n/a", not failures."""

TICK = os.sysconf("SC_CLK_TCK")
COLOURS = {"echoloop": "#1b9e77", "echoloop-epoll": "#0b5d45",
           "echoloop-nobatch": "#8fd3bf",
           "echoloop-nosplice": "#66a61e", "tokio": "#7570b3",
           "tokio-mt": "#a6a1e0", "tokio-16k": "#cab2d6", "epoll": "#e7298a",
           "c-select": "#e6ab02", "python": "#d95f02"}
DEFAULT_SERVERS = "echoloop,echoloop-epoll,tokio,tokio-mt,tokio-16k,epoll,c-select,python"
# The probes of a cold-wake case, how long they stay quiet, and how often they wake.
PROBES, QUIET, WAKES = 10, 1.5, 3


# The load generator as `cargo build --release -p echoloop-bench` leaves it.
DEFAULT_LOAD_GENERATOR = "target/release/echoloop-bench"


def add_server_args(p):
    """The options that name the servers' binaries and variants (shared with paired.py)."""
    p.add_argument("--echoloop", required=True, help="the echoloop binary (release)")
    p.add_argument("--load-generator", metavar="PATH", default=DEFAULT_LOAD_GENERATOR,
                   help="the echoloop-bench binary that loads every server (default: "
                   "%(default)s, the glibc build, whose memcmp checks the echoed bytes "
                   "faster than musl's)")
    p.add_argument("--tokio", required=True, help="the tokio-echo binary (release)")
    p.add_argument("--epoll", required=True, help="the epoll_echo binary")
    p.add_argument("--c-select", required=True, help="the select_echo binary")
    p.add_argument("--python-server", required=True, help="bench/seed_server.py")
    p.add_argument("--other-echoloop", metavar="NAME=PATH", action="append", default=[],
                   help="also run this echoloop binary as server NAME (before/after a change)")
    p.add_argument("--echoloop-args", metavar="NAME=FLAGS", action="append", default=[],
                   help="also run the echoloop binary with these extra serve flags as server "
                   "NAME, e.g. 'echoloop-q16k=--queue-size 16KiB' (to choose a default by data)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_args(p)
    p.add_argument("--out", required=True, help="directory for results.{md,json,svg}")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run")
    p.add_argument("--smoke", action="store_true",
                   help="every case, small and short, one round: checks that all runs")
    p.add_argument("--servers", default=DEFAULT_SERVERS,
                   help="comma-separated, from echoloop (select), echoloop-epoll "
                   "(--poller epoll), echoloop-nobatch (--batch-wait 0), "
                   "echoloop-nosplice (--splice-from off), "
                   "tokio (current-thread, 64 KiB), tokio-mt (multi-thread, 64 KiB), "
                   "tokio-16k (current-thread, 16 KiB), epoll, c-select, python")
    p.add_argument("--cases", help="only the cases whose name contains one of these "
                   "'|'-separated strings (names hold commas), e.g. 'pingpong 500|stream'")
    return p.parse_args()


def cpus():
    """(server CPU list, load generator CPU list) for taskset, or None without pinning."""
    if not shutil.which("taskset"):
        return None
    avail = sorted(os.sched_getaffinity(0))
    if len(avail) < 2:
        return None
    return str(avail[0]), str(avail[1])


def pinned(cmd, cpu):
    return ["taskset", "-c", cpu] + cmd if cpu else cmd


def raise_fd_limit(want):
    """The servers inherit this process's descriptor limit: raise the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def server_cmd(name, args, udp=False):
    """The command that starts server `name`; with `udp`, serving UDP echo too (NoUdp
    for a server that has none)."""
    listen = "127.0.0.1:0"
    if udp:
        if name.startswith(OURS) or any(o.split("=", 1)[0] == name
                                        for o in args.other_echoloop + args.echoloop_args):
            # TCP as well: serve takes --udp beside its listeners. The flood guard off: its
            # per-source budget would cap the load generator, the one fast source, and the
            # run would measure the guard, not the server.
            return server_cmd(name, args) + ["--udp", listen, "--udp-rate", "off",
                                              "--udp-bytes", "off"]
        if name not in UDP_PEERS:
            raise NoUdp("serves TCP only")
        return server_cmd(name, args)[:-1] + ["--udp", listen]
    for other in args.other_echoloop:
        other_name, path = other.split("=", 1)
        if name == other_name:
            return [path, "serve", "--listen", listen]
    for variant in args.echoloop_args:
        variant_name, flags = variant.split("=", 1)
        if name == variant_name:
            return [args.echoloop, "serve", "--listen", listen] + flags.split()
    return {
        "echoloop": [args.echoloop, "serve", "--listen", listen],
        # The same binary on its epoll backend (host/src/poll/epoll.rs).
        "echoloop-epoll": [args.echoloop, "serve", "--listen", listen, "--poller", "epoll"],
        # The same binary without batching (host/src/poll/plan/batch.rs): its before/after.
        "echoloop-nobatch": [args.echoloop, "serve", "--listen", listen, "--batch-wait", "0"],
        # The same binary that never relays (host/src/relay.rs): its before/after.
        "echoloop-nosplice": [args.echoloop, "serve", "--listen", listen,
                              "--splice-from", "off"],
        "tokio": [args.tokio, listen],
        "tokio-mt": [args.tokio, "--multi-thread", listen],
        "tokio-16k": [args.tokio, "--buffer", "16384", listen],
        "epoll": [args.epoll, listen],
        "c-select": [args.c_select, listen],
        "python": [sys.executable, args.python_server, listen],
    }[name]


def start_server(cmd, udp=False):
    """(process, address): the first `listening on ADDR` line's, or with `udp` the
    `listening on udp ADDR` line's (echoloop prints its TCP lines first). An echoloop
    whose serve rejects `--udp` as a usage error (exit 2) raises NoUdp."""
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    want = "listening on udp " if udp else "listening on "
    line = proc.stdout.readline()
    while line.startswith("listening on ") and not line.startswith(want):
        line = proc.stdout.readline()
    if not line.startswith(want):
        proc.kill()
        _, err = proc.communicate()
        if udp and proc.returncode == 2 and "--udp" in err:
            raise NoUdp("its serve rejects --udp: %s" % err.strip().splitlines()[0])
        raise RuntimeError("%s did not start: %r %s" % (cmd[0], line, err.strip()[-300:]))
    # Nothing reads stderr from here on: a server that logs must not block on a full pipe.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, line.split()[-1]


def stop_server(proc):
    """SIGTERM, as every server here stops on it; SIGKILL if it does not within 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_cpu_ticks(pid):
    """utime + stime of the whole process: every thread, live or exited."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


PERF_OK = None


def perf_works():
    global PERF_OK
    if PERF_OK is None:
        PERF_OK = bool(shutil.which("perf")) and subprocess.run(
            ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ).stderr.split(",")[0].strip().isdigit()
    return PERF_OK


def start_perf(pid, path):
    perf = subprocess.Popen(
        ["perf", "stat", "-x,", "-o", path, "-e", "raw_syscalls:sys_enter", "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # let it attach before the load starts
    return perf


def stop_perf(perf, path):
    if perf is None:
        return None
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=10)
    with open(path) as f:
        for line in f:
            parts = line.split(",")
            if len(parts) > 2 and "raw_syscalls" in parts[2] and parts[0].strip().isdigit():
                return int(parts[0])
    return None


def sample_rss(pid, load):
    """The largest VmRSS of `pid` seen every 50 ms while `load` runs."""
    peak = 0
    while load.poll() is None:
        peak = max(peak, proc_status_kib(pid, "VmRSS") or 0)
        time.sleep(0.05)
    return peak


def cannot_hold(r, conns, idle):
    """Why a finished bench run shows the server did not hold the case, or None."""
    why = []
    if r["connect_failures"]:
        why.append("%d connects failed" % r["connect_failures"])
    if r["resets"]:
        why.append("%d connections closed or reset" % r["resets"])
    if r.get("stalled"):
        why.append("%d never served" % r["stalled"])
    if idle and r.get("idle_open", 0) < idle:
        why.append("%d of %d idle ones open at the end" % (r.get("idle_open", 0), idle))
    return ", ".join(why) or None


def bench_cmd(args):
    """The load generator's command, before its flags."""
    return [args.load_generator]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run_paced(server, case, args, pins):
    """A paced case: this process is the load (bench/paced.py's), on the other CPU."""
    import paced  # paced.py imports this module: imported only when used
    _, _, conns, _, _ = case
    settle = 0.2 if args.smoke else paced.SETTLE
    proc, addr = start_server(pinned(server_cmd(server, args), pins and pins[0]))
    mine = os.sched_getaffinity(0)
    try:
        if pins:
            os.sched_setaffinity(0, {int(pins[1])})
        ticks0 = proc_cpu_ticks(proc.pid)
        trips = paced.load(addr, conns, 0.2, args.duration, settle)
        ticks1 = proc_cpu_ticks(proc.pid)
        peak_kib = proc_status_kib(proc.pid, "VmHWM")
    except (OSError, RuntimeError) as e:
        return {"na": "paced load failed: %s" % e}
    finally:
        os.sched_setaffinity(0, mine)
        stop_server(proc)
    if not trips:
        return {"na": "no echo came back"}
    cpu_s = (ticks1 - ticks0) / TICK
    return {"messages_per_sec": len(trips) / args.duration, "mb_per_sec": None,
            "p50_us": 1e6 * percentile(trips, 0.5), "p99_us": 1e6 * percentile(trips, 0.99),
            "server_cpu_us_per_rt": 1e6 * cpu_s / len(trips), "peak_rss_kib": peak_kib,
            "mismatches": 0}


def run_cold_wake(server, case, args, pins):
    """A cold-wake case: the load generator holds the busy and idle connections; this
    process's probes go quiet, then wake (bench/cold_wake.py's)."""
    import cold_wake  # imports this module: imported only when used
    _, _, busy, size, idle = case
    quiet, wakes, settle = (0.3, 1, 1.0) if args.smoke else (QUIET, WAKES, 3.0)
    duration = settle + wakes * (quiet + 0.5) + 1
    proc, addr = start_server(pinned(server_cmd(server, args), pins and pins[0]))
    host, port = addr.rsplit(":", 1)
    load = None
    try:
        ticks0 = proc_cpu_ticks(proc.pid)
        load = subprocess.Popen(pinned(bench_cmd(args) + [
            "--connect", addr, "--conns", str(busy), "--idle", str(idle), "--size", str(size),
            "--duration", str(duration), "--warmup", "0", "--json"], pins and pins[1]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(settle)
        probes = [socket.create_connection((host, int(port)), timeout=10)
                  for _ in range(PROBES)]
        times = []
        for _ in range(wakes):
            time.sleep(quiet)
            times += cold_wake.wake(probes)
        for s in probes:
            s.close()
        stdout, stderr = load.communicate(timeout=duration + 60)
        ticks1 = proc_cpu_ticks(proc.pid)
        peak_kib = proc_status_kib(proc.pid, "VmHWM")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return {"na": "cold wake failed: %s" % e}
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        stop_server(proc)
    if not stdout.strip():
        return {"na": (stderr.strip().splitlines() or ["the load generator failed"])[-1]}
    r = json.loads(stdout)
    if r["mismatches"]:
        return {"error": "%d connections received bytes that were not sent" % r["mismatches"],
                "mismatches": r["mismatches"]}
    why = cannot_hold(r, busy, idle)
    if why:
        return {"na": why}
    trips = r["messages"] + r["warmup_messages"] + len(times)
    cpu_s = (ticks1 - ticks0) / TICK
    return {"messages_per_sec": r["messages_per_sec"], "mb_per_sec": None,
            "p50_us": 1000 * percentile(times, 0.5), "p99_us": 1000 * percentile(times, 0.99),
            "server_cpu_us_per_rt": 1e6 * cpu_s / trips, "peak_rss_kib": peak_kib,
            "mismatches": 0}


def run_one(server, case, args, pins, count_syscalls):
    _, mode, conns, size, idle = case
    if mode == "paced":
        return run_paced(server, case, args, pins)
    if mode == "coldwake":
        return run_cold_wake(server, case, args, pins)
    udp = mode == "udp"
    try:
        proc, addr = start_server(pinned(server_cmd(server, args, udp), pins and pins[0]), udp)
    except NoUdp as e:
        return {"na": "no UDP echo (%s)" % e, "unsupported": True}
    try:
        time.sleep(0.1)
        idle_kib = proc_status_kib(proc.pid, "VmRSS")
        perf_path = os.path.join(tempfile.gettempdir(), "echoloop-perf-stat-%d.txt" % os.getpid())
        perf = start_perf(proc.pid, perf_path) if count_syscalls else None
        ticks0 = proc_cpu_ticks(proc.pid)
        load_kind = ["--udp"] if udp else ["--mode", mode, "--idle", str(idle)]
        bench = bench_cmd(args) + ["--connect", addr] + load_kind + [
            "--conns", str(conns), "--size", str(size),
            "--duration", str(args.duration), "--warmup", str(args.warmup), "--json"]
        load = subprocess.Popen(pinned(bench, pins and pins[1]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        loaded_kib = sample_rss(proc.pid, load)
        stdout, stderr = load.communicate()
        ticks1 = proc_cpu_ticks(proc.pid)
        syscalls = stop_perf(perf, perf_path)
        peak_kib = proc_status_kib(proc.pid, "VmHWM")
        died = proc.poll() is not None
    finally:
        stop_server(proc)
    if not stdout.strip():
        why = stderr.strip().splitlines()[-1:] or ["exit %d" % load.returncode]
        return {"na": ("server died: " if died else "") + why[0]}
    r = json.loads(stdout)
    if r["mismatches"]:
        return {"error": "%d connections received bytes that were not sent" % r["mismatches"],
                "mismatches": r["mismatches"]}
    why = cannot_hold(r, conns, idle) or (died and "server died")
    if why:
        return {"na": why}
    trips = r["messages"] + r["warmup_messages"]
    cpu_s = (ticks1 - ticks0) / TICK if ticks0 is not None and ticks1 is not None else None
    echoed_gb = trips * size / 1e9
    return {
        "messages_per_sec": r["messages_per_sec"],
        "mb_per_sec": r["mb_per_sec"],
        "p50_us": r["latency_us"]["p50"],
        "p99_us": r["latency_us"]["p99"],
        "server_cpu_us_per_rt": 1e6 * cpu_s / trips if trips and cpu_s is not None else None,
        "server_cpu_s_per_gb": cpu_s / echoed_gb if echoed_gb and cpu_s is not None else None,
        "server_syscalls_per_rt": syscalls / trips if syscalls is not None and trips else None,
        "idle_rss_kib": idle_kib,
        "loaded_rss_kib": loaded_kib,
        "peak_rss_kib": peak_kib,
        "bench_cpu_percent": r["cpu_percent"],
        "bench_cpu_us_per_rt": 1e6 * r["cpu_seconds"] / r["messages"] if r["messages"] else None,
        "udp_loss_percent": (100.0 * r["udp"]["lost"] / r["udp"]["sent"]
                             if udp and r["udp"]["sent"] else None),
        "mismatches": 0,
    }


METRICS = ["messages_per_sec", "mb_per_sec", "p50_us", "p99_us", "server_cpu_us_per_rt",
           "server_cpu_s_per_gb", "server_syscalls_per_rt", "idle_rss_kib", "loaded_rss_kib",
           "peak_rss_kib", "bench_cpu_percent", "bench_cpu_us_per_rt", "udp_loss_percent"]


def summarise(runs):
    """Median, min and max of each metric over the rounds; "na" when any round could not
    hold the case (one that cannot hold it every time cannot hold it)."""
    ok = [r for r in runs if "na" not in r and "error" not in r]
    out = {"rounds": len(ok),
           "unsupported": bool(runs) and all(r.get("unsupported") for r in runs),
           "na": sorted(set(r["na"] for r in runs if "na" in r)) or None,
           "errors": [r["error"] for r in runs if "error" in r],
           "mismatches": sum(r.get("mismatches", 0) for r in runs)}
    for m in METRICS:
        vals = [r[m] for r in ok if r.get(m) is not None]
        out[m] = ({"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
                  if vals and not out["na"] and not out["errors"] else None)
    return out


def med(summary, metric):
    v = summary.get(metric) if summary else None
    return v["median"] if v else None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "{:.{}f}".format(v, digits)


def spread(summary, metric, digits=1):
    v = summary.get(metric)
    if not v:
        return "n/a"
    if summary["rounds"] < 2:
        return fmt(v["median"], digits)
    return "%s (%s–%s)" % (fmt(v["median"], digits), fmt(v["min"], digits), fmt(v["max"], digits))


def mib(kib):
    return fmt(kib / 1024 if kib else None)


def markdown_table(results, meta, servers, cases):
    lines = ["Run %s on %s; %s." % (meta["date"], meta["machine"], meta["method"]), "",
             "| case | server | msg/s | MB/s | p50 µs | p99 µs | server CPU µs/RT | "
             "server CPU s/GB | syscalls/RT | RSS MiB loaded / peak | bench CPU % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        for s in servers:
            r = results[case[0]][s]
            if r["na"] or r["errors"] or r["rounds"] == 0:
                why = "; ".join((r["na"] or []) + r["errors"])[:120]
                lines.append("| %s | %s | n/a: %s |  |  |  |  |  |  |  |  |" % (case[0], s, why))
                continue
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
                case[0], s, spread(r, "messages_per_sec", 0), spread(r, "mb_per_sec"),
                spread(r, "p50_us", 0), spread(r, "p99_us", 0),
                spread(r, "server_cpu_us_per_rt", 2), spread(r, "server_cpu_s_per_gb", 3),
                spread(r, "server_syscalls_per_rt", 2), mib(med(r, "loaded_rss_kib")),
                mib(med(r, "peak_rss_kib")), fmt(med(r, "bench_cpu_percent"), 0)))
    lines += ["", "Cells: median (min–max) over the rounds. RT = round trip (stream: one "
              "write-size chunk echoed; udp: one datagram echoed). n/a: the server did not "
              "hold the case (why), or has no UDP echo."]
    loss = ["%s, %s: %s %%" % (c[0], s, spread(results[c[0]][s], "udp_loss_percent", 2))
            for c in cases if c[1] == "udp" for s in servers
            if results[c[0]][s].get("udp_loss_percent")]
    if loss:
        lines += ["", "UDP datagrams lost (no echo within `echoloop-bench --udp`'s timeout): "
                  + "; ".join(loss) + "."]
    return "\n".join(lines)


def best_peer(results, case, servers, metric):
    """(value, name) of the lowest median among the peers that held the case, or None."""
    vals = [(med(results[case][s], metric), s) for s in servers if not s.startswith(OURS)]
    # Nothing to divide by: a server whose CPU the clock's ticks did not see (a short run).
    vals = [v for v in vals if v[0]]
    return min(vals) if vals else None


def versus(results, case, servers, metric, unit, digits=2, ours_name=OURS, peer=None):
    """(text, ratio) for an echoloop build against the best peer (or `peer`), or None
    without both."""
    ours = med(results[case].get(ours_name), metric) if ours_name in servers else None
    best = best_peer(results, case, servers, metric)
    if peer is not None:
        value = med(results[case].get(peer), metric) if peer in servers else None
        best = (value, peer) if value else None
    if best is None:
        return None
    if ours is None:
        return ("n/a / %s %s (%s)" % (fmt(best[0], digits), unit, best[1]), None)
    return ("%s / %s %s (%s) = %.2f" % (fmt(ours, digits), fmt(best[0], digits), unit, best[1],
                                        ours / best[0]), ours / best[0])


def paired(raw, case, servers, metric, ours=OURS):
    """echoloop over the best peer of the same round, per round: "median (min–max)", or ""
    without a round where both were measured."""
    rounds = zip(*(raw[case][s] for s in servers))
    ratios = []
    for runs in rounds:
        by = {s: r.get(metric) for s, r in zip(servers, runs) if "na" not in r}
        peers = [v for s, v in by.items() if not s.startswith(OURS) and v]
        if by.get(ours) and peers:
            ratios.append(by[ours] / min(peers))
    if len(ratios) < 2:
        return "".join("%.2f" % r for r in ratios)
    return "%.2f (%.2f–%.2f)" % (statistics.median(ratios), min(ratios), max(ratios))


def against_the_rest(raw, servers, cases):
    """Markdown: every server's CPU over the best of the others in the same round, median
    over the rounds, per case (echoloop's variants left out). One noisy figure over the
    lowest of several reads above 1 even among equals: this is what "level" reads as in
    the run, and whether echoloop's ratio to its best peer is any worse than theirs."""
    contenders = [s for s in servers if s in (OURS, EPOLL) or not s.startswith(OURS)]
    lines = ["| case | " + " | ".join(contenders) + " |",
             "|---|" + "---:|" * len(contenders)]
    for name, mode, *_ in cases:
        metric = "server_cpu_s_per_gb" if mode == "stream" else "server_cpu_us_per_rt"
        cells = []
        for s in contenders:
            ratios = []
            for runs in zip(*(raw[name][c] for c in contenders)):
                by = {c: r.get(metric) for c, r in zip(contenders, runs) if "na" not in r}
                others = [v for c, v in by.items() if c != s and v]
                if by.get(s) and len(others) >= 2:
                    ratios.append(by[s] / min(others))
            cells.append("%.2f" % statistics.median(ratios) if ratios else "n/a")
        lines.append("| %s | %s |" % (name, " | ".join(cells)))
    return "\n".join(lines)


def targets(results, raw, servers, cases):
    """The targets (BENCHMARKS.md), as ratios against the best peer measured in the same
    run: (target, medians' ratio, round by round, met)."""
    rows = epoll_targets(results, raw, servers, cases)
    if OURS not in servers:
        return rows
    for name, mode, conns, _, idle in cases:
        if mode in ("paced", "coldwake"):
            # Measured, no target for select: its floor on the paced load is a look at every
            # watched socket, and a wake waits for the sweep (docs/benchmarks.md).
            continue
        if mode == "udp":
            continue  # the targets are TCP's
        total = conns + idle
        metric, unit = (("server_cpu_s_per_gb", "s/GB") if mode == "stream"
                        else ("server_cpu_us_per_rt", "µs/RT"))
        cpu = paired(raw, name, servers, metric)
        if idle:
            v = versus(results, name, servers, metric, unit)
            if v:
                rows.append(("CPU ≤ 2 × best peer, " + name, v[0], cpu,
                             v[1] is not None and v[1] <= 2.0))
        elif total <= 5000:
            v = versus(results, name, servers, metric, unit, 3 if mode == "stream" else 2)
            if v:
                rows.append(("CPU ≤ best peer, " + name, v[0], cpu,
                             v[1] is not None and v[1] <= 1.0))
        if mode == "pingpong" and conns in (50, 500) and not idle:
            v = versus(results, name, servers, "p99_us", "µs", 0)
            if v:
                rows.append(("p99 ≤ best peer, " + name, v[0],
                             paired(raw, name, servers, "p99_us"),
                             v[1] is not None and v[1] <= 1.0))
        # Peak RSS, max of the rounds: "every peer's", so no pairing.
        v = versus(results, name, servers, "peak_rss_kib", "KiB", 0)
        if v:
            rows.append(("peak RSS ≤ every peer's, " + name, v[0], "",
                         v[1] is not None and v[1] <= 1.0))
    return rows


def epoll_targets(results, raw, servers, cases):
    """The epoll backend's targets (issue 23): within 1.10 times the best peer on the paced
    load (CPU and p99) and at 10,000 open / 100 busy (CPU, against the C epoll peer), and a
    wake among 10,000 echoed within 1 ms (p99)."""
    rows = []
    if EPOLL not in servers:
        return rows
    for name, mode, _, _, idle in cases:
        checks = []
        if mode == "paced":
            checks = [("server_cpu_us_per_rt", "µs/msg", 2, None, 1.10),
                      ("p99_us", "µs", 0, None, 1.10)]
        elif mode == "pingpong" and idle:
            checks = [("server_cpu_us_per_rt", "µs/RT", 2, "epoll", 1.10)]
        elif mode == "coldwake":
            p99 = med(results[name].get(EPOLL), "p99_us")
            rows.append(("%s: wake p99 ≤ 1 ms, %s" % (EPOLL, name), "%s µs" % fmt(p99, 0), "",
                         p99 is not None and p99 <= 1000))
        for metric, unit, digits, peer, most in checks:
            v = versus(results, name, servers, metric, unit, digits, EPOLL, peer)
            if v:
                what = "CPU" if metric.startswith("server_cpu") else "p99"
                rows.append(("%s: %s ≤ %.2f × %s, %s" % (EPOLL, what, most, peer or "best peer",
                                                          name), v[0],
                             paired(raw, name, servers, metric, EPOLL) if peer is None else "",
                             v[1] is not None and v[1] <= most))
    return rows


def svg_chart(results, servers, cases):
    """Grouped bars of server CPU µs per round trip, log scale, every server and case;
    a server that did not hold a case shows "n/a" at the foot of its bar."""
    group_w = max(120, 16 * len(servers))
    left, top, bottom = 70, 40, 120
    w = left + group_w * len(cases) + 20
    h = 470
    plot_w, plot_h = w - left - 20, h - top - bottom
    vals = [med(results[c[0]][s], "server_cpu_us_per_rt") for c in cases for s in servers]
    vals = [v for v in vals if v]
    lo = 10 ** math.floor(math.log10(min(vals))) if vals else 0.1
    hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 100
    if hi <= lo:
        hi = lo * 10

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) /
                               (math.log10(hi) - math.log10(lo)))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (w, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="15">Server CPU per round trip (µs, log scale; '
           'lower is better; n/a: did not hold the case)</text>' % left]
    d = lo
    while d <= hi * 1.0001:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (left, left + plot_w, y(d), y(d)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 6, y(d) + 4, d))
        d *= 10
    group = plot_w / len(cases)
    bar = group * 0.85 / len(servers)
    for i, case in enumerate(cases):
        gx = left + i * group + group * 0.075
        for j, s in enumerate(servers):
            v = med(results[case[0]][s], "server_cpu_us_per_rt")
            x = gx + j * bar
            if not v:
                out.append('<text x="%.1f" y="%.1f" font-size="8" text-anchor="middle" '
                           'fill="%s">n/a</text>' % (x + bar / 2, top + plot_h - 3,
                                                    COLOURS.get(s, "#999")))
                continue
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                       '<title>%s, %s: %.2f µs</title></rect>'
                       % (x, y(v), max(bar - 1, 1), top + plot_h - y(v), COLOURS.get(s, "#999"),
                          s, case[0], v))
        words = case[0].replace(" x ", "\n× ").replace(", ", ",\n").split("\n")
        for k, line in enumerate(words):
            out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>'
                       % (gx + group * 0.425, top + plot_h + 16 + 12 * k, line))
    for j, s in enumerate(servers):
        x = left + j * 125
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                   % (x, h - 30, COLOURS.get(s, "#999")))
        out.append('<text x="%d" y="%d">%s</text>' % (x + 18, h - 20, s))
    out.append("</svg>")
    return "\n".join(out)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, Linux %s" % (model, os.cpu_count(), platform.release())


def main():
    args = parse_args()
    # The variants join the run by name; one named in --servers as well runs once.
    servers = list(dict.fromkeys(args.servers.split(",") + [
        o.split("=", 1)[0] for o in args.other_echoloop + args.echoloop_args]))
    cases = SMOKE_CASES if args.smoke else CASES
    if args.cases:
        cases = [c for c in cases if any(w in c[0] for w in args.cases.split("|"))]
    rounds = 1 if args.smoke else args.rounds
    if args.smoke:
        args.warmup, args.duration = 0.1, 0.3
    count_syscalls = not args.smoke and perf_works()
    most = max(c[2] + c[4] for c in cases)
    fd_limit = raise_fd_limit(most + 1000)
    os.makedirs(args.out, exist_ok=True)
    pins = cpus()
    raw = {c[0]: {s: [] for s in servers} for c in cases}
    for rnd in range(rounds):
        for case in cases:
            # Interleaved: each round starts with a different server.
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for s in order:
                r = run_one(s, case, args, pins, count_syscalls)
                raw[case[0]][s].append(r)
                status = r.get("error") or ("n/a: " + r["na"] if "na" in r else
                                            "%.0f msg/s, %s µs CPU/RT" % (
                                                r["messages_per_sec"],
                                                fmt(r["server_cpu_us_per_rt"], 2)))
                print("round %d  %-28s %-10s %s" % (rnd + 1, case[0], s, status), flush=True)
    results = {c[0]: {s: summarise(raw[c[0]][s]) for s in servers} for c in cases}
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "method": "%d round(s), %.1f s warm-up + %.1f s measured per run, server on CPU %s and "
                  "load generator on CPU %s, loopback, descriptor limit %s, syscalls %s" % (
                      rounds, args.warmup, args.duration, pins[0] if pins else "any",
                      pins[1] if pins else "any", fd_limit,
                      "by perf stat" if count_syscalls else "not counted")
                  + "; echoloop serves from %s, load from %s" % (
                      args.echoloop, args.load_generator),
        "echoloop": args.echoloop,
        "load_generator": args.load_generator,
    }
    md = write_results(args.out, meta, servers, cases, results, raw)
    print()
    print(md)
    failed = [(c[0], s) for c in cases for s in servers
              if results[c[0]][s]["errors"] or
              (results[c[0]][s]["rounds"] == 0 and c[2] + c[4] <= ALL_HOLD
               and not results[c[0]][s]["unsupported"])]
    for case, s in failed:
        print("failed: %s, %s: %s" % (case, s, "; ".join(
            results[case][s]["errors"] + (results[case][s]["na"] or []))), file=sys.stderr)
    return 1 if failed else 0


def write_results(out, meta, servers, cases, results, raw):
    """results.md, results.json and the chart in `out`; returns the Markdown."""
    rows = targets(results, raw, servers, cases)
    md = markdown_table(results, meta, servers, cases)
    md += ("\n\n| target | echoloop / best peer (medians) | round by round | met |\n"
           "|---|---|---|---|\n" + "\n".join(
               "| %s | %s | %s | %s |" % (n, v, p, "yes" if ok else "**no**")
               for n, v, p, ok in rows))
    if OURS in servers:
        md += ("\n\nEvery server against the best of the others, round by round (server CPU "
               "per round trip or GB over the lowest among the other servers in the same "
               "round; median over the rounds; echoloop's variants left out). Among servers "
               "of equal cost, noise alone puts each above 1: read echoloop's column against "
               "the others', not against 1.\n\n" + against_the_rest(raw, servers, cases))
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "cases": [dict(zip(("name", "mode", "conns", "size", "idle"), c))
                                           for c in cases],
                   "results": results, "runs": raw,
                   "targets": [{"target": n, "value": v, "round_by_round": p, "met": ok}
                               for n, v, p, ok in rows]},
                  f, indent=1)
    with open(os.path.join(out, "cpu_per_round_trip.svg"), "w") as f:
        f.write(svg_chart(results, servers, cases) + "\n")
    return md


def render(out):
    """Writes `out`'s results again from its results.json."""
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    cases = [tuple(c[k] for k in ("name", "mode", "conns", "size", "idle"))
             for c in saved["cases"]]
    servers = list(saved["runs"][cases[0][0]])
    print(write_results(out, saved["meta"], servers, cases, saved["results"], saved["runs"]))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"] and len(sys.argv) == 3:
        sys.exit(render(sys.argv[2]))
    sys.exit(main())
