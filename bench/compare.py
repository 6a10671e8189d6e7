#!/usr/bin/env python3
"""Runs the same load against echoloop, a tokio echo server and the seed's Python server,
in interleaved rounds, and writes a Markdown table, JSON and an SVG chart.

Called by bench/run.sh, which builds the binaries first; see BENCHMARKS.md. Standard
library only, so it runs on a fresh machine with python3.

Per server and case, over the whole `echoloop bench` run against a freshly started server
(connect, warm-up, measured window, close):
  * server CPU per round trip: utime+stime from /proc/PID/stat / round trips of the run;
  * server syscalls per round trip: `perf stat -e raw_syscalls:sys_enter -p PID` / round
    trips of the run ("n/a" when perf cannot count them);
  * peak RSS: VmHWM from /proc/PID/status after the run (and VmRSS once idle, before it);
and from the measured window only: throughput and latency percentiles.
Server and load generator are pinned to different CPUs with taskset when there are two.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import functools
import subprocess
import sys
import tempfile
import time

CASES = [
    # (name, mode, conns, size)
    ("pingpong 1 x 64 B", "pingpong", 1, 64),
    ("pingpong 50 x 64 B", "pingpong", 50, 64),
    ("pingpong 500 x 64 B", "pingpong", 500, 64),
    ("pingpong 50 x 4 KiB", "pingpong", 50, 4096),
    ("stream 1 x 64 KiB", "stream", 1, 65536),
    ("stream 50 x 16 KiB", "stream", 50, 16384),
]
SMOKE_CASES = [CASES[1], CASES[4]]


@functools.lru_cache(maxsize=None)
def core_bytes(conns=1000, buffers=1000, queue=16384):
    """The memory of echoloop's core as `serve` runs it (1000 connections, one 16 KiB buffer
    each), from the one home of the formula: `echoloop_core::footprint`, printed by the
    core's footprint example as its last line, `footprint(C, B, Q) = N B (...)`."""
    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "echoloop-core", "--example", "footprint",
         "--", str(conns), str(buffers), str(queue)],
        check=True, stdout=subprocess.PIPE, text=True).stdout
    return int(out.strip().splitlines()[-1].split("=")[1].split()[0])


def rss_target_kib():
    """The RSS target under load: the core's whole footprint plus 4 MiB."""
    return (core_bytes() + 4 * 1024 * 1024) // 1024

TICK = os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--echoloop", required=True, help="the echoloop binary (release)")
    p.add_argument("--tokio", required=True, help="the tokio-echo binary (release)")
    p.add_argument("--python-server", required=True, help="bench/seed_server.py")
    p.add_argument("--out", required=True, help="directory for results.{md,json,svg}")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run")
    p.add_argument("--smoke", action="store_true",
                   help="two short cases, one round: checks that everything runs")
    p.add_argument("--servers", default="echoloop,echoloop-nobatch,tokio,python",
                   help="comma-separated, from echoloop, echoloop-nobatch (--batch-wait 0), "
                   "tokio, python")
    p.add_argument("--other-echoloop", metavar="NAME=PATH", action="append", default=[],
                   help="also run this echoloop binary as server NAME (before/after a change)")
    p.add_argument("--cases", help="only the cases whose name contains one of these "
                   "comma-separated strings, e.g. 'pingpong 500,stream'")
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


def server_cmd(name, args):
    for other in args.other_echoloop:
        other_name, path = other.split("=", 1)
        if name == other_name:
            return [path, "serve", "--listen", "127.0.0.1:0"]
    return {
        "echoloop": [args.echoloop, "serve", "--listen", "127.0.0.1:0"],
        # The same binary without batching (host/src/batch.rs): its before/after.
        "echoloop-nobatch": [args.echoloop, "serve", "--listen", "127.0.0.1:0",
                             "--batch-wait", "0"],
        "tokio": [args.tokio, "127.0.0.1:0"],
        "python": [sys.executable, args.python_server, "127.0.0.1:0"],
    }[name]


def start_server(cmd):
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError("%s did not start: %r" % (cmd[0], line))
    return proc, line.split()[-1]


def proc_cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
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
    if not perf_works():
        return None
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
    """The largest VmRSS of `pid` seen every 50 ms while `load` runs: the footprint under
    load (VmHWM also counts start-up)."""
    peak = 0
    while load.poll() is None:
        peak = max(peak, proc_status_kib(pid, "VmRSS") or 0)
        time.sleep(0.05)
    return peak


def run_one(server, case, args, pins):
    _, mode, conns, size = case
    cmd = server_cmd(server, args)
    proc, addr = start_server(pinned(cmd, pins and pins[0]))
    try:
        time.sleep(0.2)
        idle_kib = proc_status_kib(proc.pid, "VmRSS")
        perf_path = os.path.join(tempfile.gettempdir(), "echoloop-perf-stat-%d.txt" % os.getpid())
        perf = start_perf(proc.pid, perf_path)
        ticks0 = proc_cpu_ticks(proc.pid)
        bench = [args.echoloop, "bench", "--connect", addr, "--mode", mode,
                 "--conns", str(conns), "--size", str(size), "--duration", str(args.duration),
                 "--warmup", str(args.warmup), "--json"]
        load = subprocess.Popen(pinned(bench, pins and pins[1]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        loaded_kib = sample_rss(proc.pid, load)
        stdout, stderr = load.communicate()
        ticks1 = proc_cpu_ticks(proc.pid)
        syscalls = stop_perf(perf, perf_path)
        peak_kib = proc_status_kib(proc.pid, "VmHWM")
    finally:
        proc.kill()
        proc.wait()
    if load.returncode != 0 or not stdout.strip():
        return {"error": (stderr.strip() or "exit %d" % load.returncode)}
    r = json.loads(stdout)
    trips = r["messages"] + r["warmup_messages"]
    cpu_s = (ticks1 - ticks0) / TICK
    echoed_gb = trips * size / 1e9
    return {
        "messages_per_sec": r["messages_per_sec"],
        "mb_per_sec": r["mb_per_sec"],
        "p50_us": r["latency_us"]["p50"],
        "p99_us": r["latency_us"]["p99"],
        "server_cpu_us_per_rt": 1e6 * cpu_s / trips if trips else None,
        "server_cpu_s_per_gb": cpu_s / echoed_gb if echoed_gb else None,
        "server_syscalls_per_rt": syscalls / trips if syscalls is not None and trips else None,
        "idle_rss_kib": idle_kib,
        "loaded_rss_kib": loaded_kib,
        "peak_rss_kib": peak_kib,
        "bench_cpu_percent": r["cpu_percent"],
        "mismatches": r["mismatches"],
        "resets": r["resets"],
        "connect_failures": r["connect_failures"],
    }


METRICS = ["messages_per_sec", "mb_per_sec", "p50_us", "p99_us", "server_cpu_us_per_rt",
           "server_cpu_s_per_gb", "server_syscalls_per_rt", "idle_rss_kib", "loaded_rss_kib", "peak_rss_kib",
           "bench_cpu_percent"]


def summarise(runs):
    """Median, min and max of each metric over the rounds that worked."""
    ok = [r for r in runs if "error" not in r]
    out = {"rounds": len(ok), "errors": [r["error"] for r in runs if "error" in r],
           "mismatches": sum(r["mismatches"] for r in ok)}
    for m in METRICS:
        vals = [r[m] for r in ok if r[m] is not None]
        out[m] = ({"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
                  if vals else None)
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


def markdown(results, meta, servers, cases):
    lines = ["Run %s on %s; %s." % (meta["date"], meta["machine"], meta["method"]), "",
             "| case | server | msg/s | MB/s | p50 µs | p99 µs | server CPU µs/RT | "
             "syscalls/RT | RSS MiB idle / loaded / VmHWM | bench CPU % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        for s in servers:
            r = results[case[0]][s]
            if r["rounds"] == 0:
                lines.append("| %s | %s | failed: %s |||||||| |" % (case[0], s, r["errors"][:1]))
                continue
            rss = "%s / %s / %s" % tuple(fmt(k / 1024 if k else None) for k in (
                med(r, "idle_rss_kib"), med(r, "loaded_rss_kib"), med(r, "peak_rss_kib")))
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                case[0], s, spread(r, "messages_per_sec", 0), spread(r, "mb_per_sec"),
                spread(r, "p50_us", 0), spread(r, "p99_us", 0),
                spread(r, "server_cpu_us_per_rt", 2), spread(r, "server_syscalls_per_rt", 2),
                rss, fmt(med(r, "bench_cpu_percent"), 0)))
    lines += ["", "Cells: median (min–max) over the rounds. RT = round trip (stream: one "
              "write-size chunk echoed)."]
    return "\n".join(lines)


def paired(raw, name, metric):
    """echoloop / tokio per round (the two ran back to back, on the same machine state):
    ' (per round: median, min–max)', or '' without two servers' rounds."""
    ratios = [e[metric] / t[metric] for e, t in zip(raw[name]["echoloop"], raw[name]["tokio"])
              if "error" not in e and "error" not in t and e[metric] and t[metric]]
    if len(ratios) < 2:
        return ""
    return " (per round: %.2f, %.2f–%.2f)" % (statistics.median(ratios), min(ratios),
                                               max(ratios))


def targets(results, raw, servers, cases):
    """The issue's targets, as ratios against tokio measured in the same run."""
    rows = []
    if "echoloop" not in servers:
        return rows
    for case in cases:
        name, mode, conns, _ = case
        e = results[name]["echoloop"]
        t = results[name].get("tokio") if "tokio" in servers else None
        if t and mode == "pingpong" and conns >= 50:
            a, b = med(e, "server_cpu_us_per_rt"), med(t, "server_cpu_us_per_rt")
            if a and b:
                rows.append(("CPU/RT ≤ tokio, " + name, "%.2f / %.2f µs = %.2f%s" % (
                    a, b, a / b, paired(raw, name, "server_cpu_us_per_rt")), a <= b))
        if t and mode == "stream":
            a, b = med(e, "server_cpu_s_per_gb"), med(t, "server_cpu_s_per_gb")
            if a and b:
                rows.append(("CPU/GB ≤ tokio, " + name, "%.3f / %.3f s = %.2f%s" % (
                    a, b, a / b, paired(raw, name, "server_cpu_s_per_gb")), a <= b))
        if mode == "pingpong" and conns in (50, 500):
            s = med(e, "server_syscalls_per_rt")
            rows.append(("syscalls/RT ≤ 2.2, " + name, fmt(s, 2), s is not None and s <= 2.2))
        loaded, hwm = med(e, "loaded_rss_kib"), med(e, "peak_rss_kib")
        if loaded and hwm:
            target = rss_target_kib()
            rows.append(("RSS under load ≤ core + 4 MiB (%.1f MiB), %s" % (
                target / 1024, name), "%.1f MiB (idle %.1f, VmHWM %.1f)" % (
                loaded / 1024, (med(e, "idle_rss_kib") or 0) / 1024, hwm / 1024),
                loaded <= target))
    return rows


def svg_chart(results, servers, cases):
    """Grouped bars of server CPU µs per round trip, log scale."""
    import math
    colours = {"echoloop": "#1b9e77", "echoloop-nobatch": "#8fd3bf", "tokio": "#7570b3",
               "python": "#d95f02"}
    w, h, left, top, bottom = 900, 420, 70, 40, 90
    plot_w, plot_h = w - left - 20, h - top - bottom
    vals = [med(results[c[0]][s], "server_cpu_us_per_rt") for c in cases for s in servers]
    vals = [v for v in vals if v]
    lo = 10 ** math.floor(math.log10(min(vals))) if vals else 0.1
    hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 100
    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) /
                               (math.log10(hi) - math.log10(lo)))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (w, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="15">Server CPU per round trip (µs, log scale; '
           'lower is better)</text>' % left]
    d = lo
    while d <= hi * 1.0001:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (left, left + plot_w, y(d), y(d)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 6, y(d) + 4, d))
        d *= 10
    group = plot_w / len(cases)
    bar = group * 0.8 / len(servers)
    for i, case in enumerate(cases):
        gx = left + i * group + group * 0.1
        for j, s in enumerate(servers):
            v = med(results[case[0]][s], "server_cpu_us_per_rt")
            if not v:
                continue
            x = gx + j * bar
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                       '<title>%s, %s: %.2f µs</title></rect>'
                       % (x, y(v), bar - 2, top + plot_h - y(v), colours.get(s, "#999"),
                          s, case[0], v))
            out.append('<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>'
                       % (x + bar / 2 - 1, y(v) - 3, fmt(v, 1)))
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>'
                   % (gx + group * 0.4, top + plot_h + 18, case[0]))
    for j, s in enumerate(servers):
        x = left + j * 130
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                   % (x, h - 30, colours.get(s, "#999")))
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
    servers = args.servers.split(",") + [o.split("=", 1)[0] for o in args.other_echoloop]
    cases = SMOKE_CASES if args.smoke else CASES
    if args.cases:
        cases = [c for c in cases if any(w in c[0] for w in args.cases.split(","))]
    rounds = 1 if args.smoke else args.rounds
    if args.smoke:
        args.warmup, args.duration = 0.3, 1.0
    os.makedirs(args.out, exist_ok=True)
    pins = cpus()
    raw = {c[0]: {s: [] for s in servers} for c in cases}
    for rnd in range(rounds):
        for case in cases:
            # Interleaved: each round starts with a different server.
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for s in order:
                r = run_one(s, case, args, pins)
                raw[case[0]][s].append(r)
                status = r.get("error") or "%.0f msg/s, %s µs CPU/RT" % (
                    r["messages_per_sec"], fmt(r["server_cpu_us_per_rt"], 2))
                print("round %d  %-22s %-9s %s" % (rnd + 1, case[0], s, status), flush=True)
    results = {c[0]: {s: summarise(raw[c[0]][s]) for s in servers} for c in cases}
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "method": "%d round(s), %.1f s warm-up + %.1f s measured per run, server on CPU %s and "
                  "load generator on CPU %s, loopback, syscalls %s" % (
                      rounds, args.warmup, args.duration, pins[0] if pins else "any",
                      pins[1] if pins else "any",
                      "by perf stat" if perf_works() else "n/a (perf cannot count them here)"),
    }
    rows = targets(results, raw, servers, cases)
    md = markdown(results, meta, servers, cases)
    md += "\n\n| target | echoloop (vs tokio) | met |\n|---|---|---|\n" + "\n".join(
        "| %s | %s | %s |" % (n, v, "yes" if ok else "**no**") for n, v, ok in rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "runs": raw,
                   "targets": [{"target": n, "value": v, "met": ok} for n, v, ok in rows]},
                  f, indent=1)
    with open(os.path.join(args.out, "cpu_per_round_trip.svg"), "w") as f:
        f.write(svg_chart(results, servers, cases) + "\n")
    print()
    print(md)
    failed = [s for c in cases for s in servers if results[c[0]][s]["rounds"] == 0]
    mismatched = sum(results[c[0]][s]["mismatches"] for c in cases for s in servers)
    if failed or mismatched:
        print("some runs failed or mismatched", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
