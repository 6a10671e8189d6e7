#!/usr/bin/env python3
"""Server CPU per round trip, paired slice by slice: for differences smaller than the
noise of bench/compare.py.

compare.py runs each server for seconds, one after another, so a busy minute on the
shared host lands on whichever server ran in it; at one connection, three servers that
run identical code read 24.3, 26.1 and 28.9 µs per round trip in one such run. Here
every server is started once and the load generator visits each in turn for a short
slice (half a second by default), in a fresh random order every round, for many rounds.
Drift slower than a round then moves every server of that round alike, and a ratio
taken within the round cancels it. Each server's CPU is read in nanoseconds from
/proc/PID/task/*/schedstat (the time its threads ran), not in clock ticks.

For one case (`--mode`, `--conns`, `--size`) it writes a Markdown report: per server, the
median CPU per round trip, p99 and throughput over the rounds; then, against echoloop,
the median over the rounds of echoloop's figure over the other server's *in the same
round*, with a bootstrap interval, and a verdict: lower or higher when the whole
interval is on one side of 1, "level" otherwise. The intervals are widened so that all
of them hold together with 95 % (Bonferroni). Run the echoloop binary twice under
two names (`--echoloop-args 'echoloop-again='`) to see how wide "the same server" reads.

    python3 bench/paired.py --echoloop target/x86_64-unknown-linux-musl/release/echoloop \\
        --load-generator target/release/echoloop-bench --tokio target/release/tokio-echo \\
        --epoll target/bench-peers/epoll_echo --c-select target/bench-peers/select_echo \\
        --python-server bench/seed_server.py --echoloop-args 'echoloop-again=' \\
        --conns 1 --size 64 --rounds 40 --out bench/results/paired-1x64.md

`python3 bench/paired.py --render OUT.json` writes the report again from a run's JSON,
which keeps every slice (with the load generator's own CPU per round trip, not reported).

Every echoed byte is still checked: a mismatch fails the run. Each slice is a whole
`echoloop-bench` run (connect, warm-up, measured window, close), and its server CPU and
round trips are the whole run's, as in compare.py.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import compare

DEFAULT_SERVERS = "echoloop,tokio,tokio-mt,tokio-16k,epoll,c-select"
BOOTSTRAP = 4000
# Below this many paired rounds a bootstrap interval of the median is not to be trusted:
# the report gives the ratio without a verdict.
FEWEST_FOR_VERDICT = 20


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    compare.add_server_args(p)
    p.add_argument("--out", required=True, help="the Markdown report (and .json beside it)")
    p.add_argument("--servers", default=DEFAULT_SERVERS,
                   help="comma-separated, as in compare.py; the variants named by "
                   "--echoloop-args and --other-echoloop join them")
    p.add_argument("--mode", choices=("pingpong", "stream"), default="pingpong")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--slice", type=float, default=0.5, help="measured seconds per slice")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up seconds per slice")
    p.add_argument("--seed", type=int, default=1, help="for the orders and the bootstrap")
    return p.parse_args()


def cpu_ns(pid):
    """Nanoseconds on CPU of every live thread of `pid` (schedstat's first field)."""
    total = 0
    task_dir = "/proc/%d/task" % pid
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "schedstat")) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that exited between listdir and open
    return total


def slice_once(proc, addr, args, pin):
    """One slice against a running server: its CPU per round trip, p99 and msg/s, or an
    {"na": why}."""
    bench = [args.load_generator, "--connect", addr,
             "--mode", args.mode, "--conns", str(args.conns), "--size", str(args.size),
             "--duration", str(args.slice), "--warmup", str(args.warmup), "--json"]
    before = cpu_ns(proc.pid)
    load = subprocess.run(compare.pinned(bench, pin), capture_output=True, text=True)
    after = cpu_ns(proc.pid)
    if proc.poll() is not None:
        return {"na": "server died"}
    if not load.stdout.strip():
        return {"na": (load.stderr.strip().splitlines() or ["exit %d" % load.returncode])[-1]}
    r = json.loads(load.stdout)
    if r["mismatches"]:
        raise SystemExit("paired.py: %d connections received bytes that were not sent (%s)"
                         % (r["mismatches"], addr))
    why = compare.cannot_hold(r, args.conns, 0)
    if why:
        return {"na": why}
    trips = r["messages"] + r["warmup_messages"]
    return {"cpu_us_per_rt": (after - before) / 1e3 / trips if trips else None,
            "p99_us": r["latency_us"]["p99"],
            "messages_per_sec": r["messages_per_sec"],
            "bench_cpu_us_per_rt": 1e6 * r["cpu_seconds"] / r["messages"] if r["messages"]
            else None}


def run(args, servers, pins):
    """{server: [slice result per round]}, every server up for the whole run; `pins`:
    compare.cpus()'s (server CPU, load generator CPU) or None."""
    compare.raise_fd_limit(args.conns + 1000)  # the servers inherit it
    procs = {}
    raw = {s: [] for s in servers}
    rng = random.Random(args.seed)
    try:
        for s in servers:
            procs[s] = compare.start_server(
                compare.pinned(compare.server_cmd(s, args), pins and pins[0]))
        for rnd in range(args.rounds):
            for s in rng.sample(servers, len(servers)):
                proc, addr = procs[s]
                r = slice_once(proc, addr, args, pins and pins[1])
                raw[s].append(r)
                print("round %d  %-16s %s" % (rnd + 1, s, r.get("na") or "%s µs CPU/RT" %
                                              compare.fmt(r["cpu_us_per_rt"], 2)), flush=True)
    finally:
        for proc, _ in procs.values():
            compare.stop_server(proc)
    return raw


def paired_ratios(raw, a, b, metric):
    """a's metric over b's, for every round where both were measured."""
    return [ra[metric] / rb[metric] for ra, rb in zip(raw[a], raw[b])
            if ra.get(metric) and rb.get(metric)]


def bootstrap(ratios, rng, level):
    """(median, low, high): the median and a percentile-bootstrap interval for it that
    holds with probability `level`."""
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios)))
                  for _ in range(BOOTSTRAP))
    tail = (1 - level) / 2
    return (statistics.median(ratios), meds[int(tail * BOOTSTRAP)],
            meds[int((1 - tail) * BOOTSTRAP) - 1])


def verdict(low, high):
    if high < 1:
        return "echoloop lower"
    if low > 1:
        return "echoloop higher"
    return "level"


def quartiles(vals):
    q = statistics.quantiles(vals, n=4)
    return "%.2f (%.2f–%.2f)" % (statistics.median(vals), q[0], q[2])


def report(args, servers, raw, meta):
    rng = random.Random(args.seed)
    case = "%s %d x %d B" % (args.mode, args.conns, args.size)
    lines = ["%s, paired slices: %s" % (case, meta), "",
             "| server | CPU µs/RT, median (quartiles) | p99 µs | msg/s | slices |",
             "|---|---:|---:|---:|---:|"]
    for s in servers:
        ok = [r for r in raw[s] if "na" not in r]
        if len(ok) < 2:
            lines.append("| %s | n/a: %s | | | %d |" % (
                s, "; ".join(sorted({r["na"] for r in raw[s] if "na" in r})), len(ok)))
            continue
        lines.append("| %s | %s | %.0f | %s | %d |" % (
            s, quartiles([r["cpu_us_per_rt"] for r in ok]),
            statistics.median(r["p99_us"] for r in ok),
            compare.fmt(statistics.median(r["messages_per_sec"] for r in ok), 0), len(ok)))
    others = [s for s in servers if s != compare.OURS]
    # One interval per comparison and metric; together they hold with 95 % (Bonferroni),
    # so "lower" or "higher" anywhere in the table is not the one-in-twenty chance that
    # a dozen plain 95 % intervals would give somewhere.
    level = 1 - 0.05 / (2 * len(others))
    lines += ["", "echoloop over each other server in the same round: median over the "
              "rounds, with a %.2f %% bootstrap interval (all %d intervals hold together "
              "with 95 %%):" % (100 * level, 2 * len(others)), "",
              "| against | CPU per RT | verdict | p99 | verdict |", "|---|---|---|---|---|"]
    for s in others:
        cells = []
        for metric in ("cpu_us_per_rt", "p99_us"):
            ratios = paired_ratios(raw, compare.OURS, s, metric)
            if len(ratios) < 2:
                cells += ["n/a", ""]
                continue
            mid, low, high = bootstrap(ratios, rng, level)
            cells += ["%.3f (%.3f–%.3f)" % (mid, low, high),
                      verdict(low, high) if len(ratios) >= FEWEST_FOR_VERDICT
                      else "too few rounds"]
        lines.append("| %s | %s |" % (s, " | ".join(cells)))
    return "\n".join(lines)


def main():
    args = parse_args()
    servers = list(dict.fromkeys(args.servers.split(",") + [
        o.split("=", 1)[0] for o in args.other_echoloop + args.echoloop_args]))
    if compare.OURS not in servers:
        raise SystemExit("paired.py: --servers must include echoloop")
    pins = compare.cpus()
    meta = ("%s, %s; %d rounds of %.1f s warm-up + %.1f s measured per server, in a random "
            "order each round; server on CPU %s, load generator on CPU %s" % (
                time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), compare.machine(),
                args.rounds, args.warmup, args.slice, pins[0] if pins else "any",
                pins[1] if pins else "any"))
    raw = run(args, servers, pins)
    md = report(args, servers, raw, meta)
    with open(args.out, "w") as f:
        f.write(md + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"meta": meta, "args": {k: v for k, v in vars(args).items()},
                   "runs": raw}, f, indent=1)
    print()
    print(md)
    return 0


def render(path):
    """Writes the Markdown report again from a run's .json, running nothing."""
    with open(path) as f:
        saved = json.load(f)
    args = argparse.Namespace(**saved["args"])
    md = report(args, list(saved["runs"]), saved["runs"], saved["meta"])
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"] and len(sys.argv) == 3:
        sys.exit(render(sys.argv[2]))
    sys.exit(main())
