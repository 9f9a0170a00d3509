#!/usr/bin/env python3
"""Reference benchmark: Python's standard-library process pools.

Measures ``concurrent.futures.ProcessPoolExecutor`` and ``multiprocessing.Pool``
on five workloads (2 workers unless stated), for comparison with the Rust
process-pool crate in this repository:

  W1 latency     one no-op submitted and awaited, sequentially (median, p99 in us)
  W2 throughput  N no-ops submitted at once then awaited in order (tasks/s), and
                 map over the same N with chunksize ceil(N / (4 * workers)) (items/s)
  W3 payload     echo of a 16 MiB bytes buffer, sequential round trips
                 (MB/s, MB = 10^6 bytes, payload counted once per round trip)
  W3b shared     64 tasks submitted at once, each reading a 16 MiB table (one
                 byte per 4 KiB page): sent by value (bytes) and through one
                 multiprocessing.shared_memory.SharedMemory (ms, creation timed);
                 and a multiprocessing.Value incremented under get_lock() by
                 two Processes (increments/s)
  W4 CPU scaling 64 tasks of a fixed xorshift64 multiply-accumulate kernel,
                 wall time with 1 and 2 workers, efficiency = T1 / (2 * T2)
  W5 start-up    create a pool of 2 and get the first no-op result back (ms),
                 median of 5, for each available start method; and one
                 multiprocessing.Process started and its no-op result received
                 over a Pipe (procpool::spawn's counterpart)
  W6 channels    a multiprocessing.Process puts 1,000,000 ints on a
                 multiprocessing.Queue, then 256 bytes objects of 1 MiB on
                 another (maxsize 16); the parent gets them all (msgs/s, MB/s)
  W7 manager     2 processes each write 20,000 keys into one Manager().dict()
                 at once, one proxy call each (writes/s over both, us per write)

W1-W4 use the 'fork' start method by default (the Linux default in Python 3.11);
W5 covers 'fork', 'spawn' and 'forkserver' where available.
Only the standard library is used.

Run:
    python3 bench/python_pools.py --reps 3 --json out.json
    python3 bench/python_pools.py --quick              # smoke run
    python3 bench/python_pools.py --only W1,W3         # selected workloads
"""

import argparse
from multiprocessing import resource_tracker, shared_memory
import concurrent.futures
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback

M64 = (1 << 64) - 1
PAYLOAD_BYTES = 16 * 1024 * 1024
WORKERS = 2
TARGET_TASK_SECONDS = 0.020
ALL_WORKLOADS = ("W1", "W2", "W3", "W3B", "W4", "W5", "W6", "W7")
PPE = "ProcessPoolExecutor"
MPP = "multiprocessing.Pool"
MPROC = "multiprocessing.Process"
MQUEUE = "multiprocessing.Queue"
MMANAGER = "multiprocessing.Manager"
MVALUE = "multiprocessing.Value"
W3B_TASKS = 64
W6_BLOB = 1 << 20


# --------------------------------------------------------------------------
# Task functions (module level so every start method can pickle them)
# --------------------------------------------------------------------------

def noop(x):
    return x


def echo(buf):
    return buf


def send_noop(conn, x):
    """A Process target: sends noop(x) back, as procpool::spawn returns it."""
    conn.send(noop(x))
    conn.close()


def kernel(seed, iters):
    """xorshift64 with a multiply-accumulate; all arithmetic mod 2^64."""
    x = seed | 1
    acc = 0
    M = M64
    for _ in range(iters):
        x ^= (x << 13) & M
        x ^= x >> 7
        x ^= (x << 17) & M
        acc = (acc + x * 0x9E3779B97F4A7C15) & M
    return acc


def kernel_task(seed_iters):
    seed, iters = seed_iters
    return kernel(seed, iters)


# --------------------------------------------------------------------------
# Thin adapters so each workload is written once for both pool kinds
# --------------------------------------------------------------------------

class ExecutorAdapter:
    name = PPE

    def open(self, workers, ctx):
        return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def call(self, pool, fn, arg):
        return pool.submit(fn, arg).result()

    def submit_all(self, pool, fn, args):
        futures = [pool.submit(fn, a) for a in args]
        return [f.result() for f in futures]

    def map(self, pool, fn, args, chunksize):
        return list(pool.map(fn, args, chunksize=chunksize))

    def close(self, pool):
        pool.shutdown(wait=True)


class MpPoolAdapter:
    name = MPP

    def open(self, workers, ctx):
        return ctx.Pool(processes=workers)

    def call(self, pool, fn, arg):
        return pool.apply_async(fn, (arg,)).get()

    def submit_all(self, pool, fn, args):
        handles = [pool.apply_async(fn, (a,)) for a in args]
        return [h.get() for h in handles]

    def map(self, pool, fn, args, chunksize):
        return pool.map(fn, args, chunksize=chunksize)

    def close(self, pool):
        pool.close()
        pool.join()


ADAPTERS = (ExecutorAdapter(), MpPoolAdapter())


class PoolScope:
    """Context manager: open a pool, warm up every worker, always shut it down."""

    def __init__(self, adapter, workers, ctx):
        self.adapter, self.workers, self.ctx = adapter, workers, ctx
        self.pool = None

    def __enter__(self):
        self.pool = self.adapter.open(self.workers, self.ctx)
        # Several tasks at once so that every worker process is started.
        got = self.adapter.map(self.pool, noop, list(range(8 * self.workers)), 1)
        assert got == list(range(8 * self.workers))
        return self.pool

    def __exit__(self, *exc):
        if self.pool is not None:
            self.adapter.close(self.pool)
        return False


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.rows = []

    def add(self, impl, workload, unit, samples):
        self.rows.append({
            "impl": impl,
            "workload": workload,
            "unit": unit,
            "median": statistics.median(samples),
            "min": min(samples),
            "max": max(samples),
            "reps": len(samples),
        })
        r = self.rows[-1]
        print(f"  {impl:<22} {workload:<26} median {fmt(r['median']):>12} {unit}", flush=True)


def fmt(v):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[k]


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

def w1_latency(adapter, ctx, cfg, results):
    medians, p99s = [], []
    with PoolScope(adapter, WORKERS, ctx) as pool:
        for _ in range(cfg.reps):
            for i in range(cfg.w1_warmup):
                adapter.call(pool, noop, i)
            lat_us = []
            for i in range(cfg.w1_calls):
                t0 = time.perf_counter()
                r = adapter.call(pool, noop, i)
                lat_us.append((time.perf_counter() - t0) * 1e6)
                if r != i:
                    raise AssertionError(f"noop({i}) returned {r!r}")
            lat_us.sort()
            medians.append(statistics.median(lat_us))
            p99s.append(percentile(lat_us, 99))
    results.add(adapter.name, "W1 median us", "us", medians)
    results.add(adapter.name, "W1 p99 us", "us", p99s)


def w2_throughput(adapter, ctx, cfg, results):
    n = cfg.w2_tasks
    args = list(range(n))
    expected = n * (n - 1) // 2
    chunksize = math.ceil(n / (4 * WORKERS))
    submit_rates, map_rates = [], []
    with PoolScope(adapter, WORKERS, ctx) as pool:
        for _ in range(cfg.reps):
            t0 = time.perf_counter()
            got = adapter.submit_all(pool, noop, args)
            dt = time.perf_counter() - t0
            if sum(got) != expected or len(got) != n:
                raise AssertionError("W2 submit: wrong results")
            submit_rates.append(n / dt)

            t0 = time.perf_counter()
            got = adapter.map(pool, noop, range(n), chunksize)
            dt = time.perf_counter() - t0
            if got != args:
                raise AssertionError("W2 map: wrong results")
            map_rates.append(n / dt)
    results.add(adapter.name, "W2 submit tasks/s", "tasks/s", submit_rates)
    results.add(adapter.name, f"W2 map items/s", "items/s", map_rates)


def w3_payload(adapter, ctx, cfg, results, payload):
    rates = []
    with PoolScope(adapter, WORKERS, ctx) as pool:
        for rep in range(cfg.reps):
            for i in range(cfg.w3_warmup):
                back = adapter.call(pool, echo, payload)
                if rep == 0 and i == 0 and back != payload:
                    raise AssertionError("W3: echo differs from input")
            del back
            t0 = time.perf_counter()
            for i in range(cfg.w3_trips):
                back = adapter.call(pool, echo, payload)
                if i == 0 and back != payload:  # one 16 MiB compare per rep, timed
                    raise AssertionError("W3: echo differs from input")
            dt = time.perf_counter() - t0
            del back
            rates.append(len(payload) * cfg.w3_trips / 1e6 / dt)
    results.add(adapter.name, "W3 echo 16MiB MB/s", "MB/s", rates)


def w4_scaling(adapter, ctx, cfg, results):
    tasks = [(seed, cfg.w4_iters) for seed in range(1, cfg.w4_tasks + 1)]
    times = {1: [], 2: []}
    reference = None
    # Both pools stay open and the 1- and 2-worker runs alternate within each
    # rep, so that each T1/T2 pair sees similar machine conditions.
    with PoolScope(adapter, 1, ctx) as pool1, PoolScope(adapter, 2, ctx) as pool2:
        for _ in range(cfg.reps):
            for workers, pool in ((1, pool1), (2, pool2)):
                t0 = time.perf_counter()
                got = adapter.map(pool, kernel_task, tasks, 1)
                times[workers].append(time.perf_counter() - t0)
                if reference is None:
                    reference = got
                elif got != reference:
                    raise AssertionError("W4: results differ between runs")
    eff = [t1 / (2 * t2) for t1, t2 in zip(times[1], times[2])]
    results.add(adapter.name, "W4 T1 ms", "ms", [t * 1e3 for t in times[1]])
    results.add(adapter.name, "W4 T2 ms", "ms", [t * 1e3 for t in times[2]])
    results.add(adapter.name, "W4 efficiency T1/(2*T2)", "ratio", eff)


def w5_startup(adapter, method, cfg, results):
    ctx = multiprocessing.get_context(method)
    rep_medians = []
    for _ in range(cfg.reps):
        startup_ms = []
        for i in range(cfg.w5_repeats):
            t0 = time.perf_counter()
            pool = adapter.open(WORKERS, ctx)
            try:
                r = adapter.call(pool, noop, i)
                startup_ms.append((time.perf_counter() - t0) * 1e3)
            finally:
                adapter.close(pool)
            if r != i:
                raise AssertionError("W5: wrong result")
        rep_medians.append(statistics.median(startup_ms))
    results.add(adapter.name, f"W5 startup ms ({method})", "ms", rep_medians)


def w5_process(method, cfg, results):
    """One Process started, its result received over a Pipe; joined untimed."""
    ctx = multiprocessing.get_context(method)
    rep_medians = []
    for _ in range(cfg.reps):
        start_ms = []
        for i in range(cfg.w5_repeats):
            t0 = time.perf_counter()
            receiver, sender = ctx.Pipe(duplex=False)
            process = ctx.Process(target=send_noop, args=(sender, i))
            process.start()
            sender.close()
            r = receiver.recv()
            start_ms.append((time.perf_counter() - t0) * 1e3)
            process.join()
            receiver.close()
            if r != i:
                raise AssertionError("W5 process: wrong result")
        rep_medians.append(statistics.median(start_ms))
    results.add(MPROC, f"W5 process ms ({method})", "ms", rep_medians)


def page_sum(buf):
    """W3b: one byte per 4 KiB page, summed (as the Rust side reads)."""
    return sum(memoryview(buf)[::4096])


def pages_by_value(table):
    return page_sum(table)


def pages_shared(name):
    # Attaching registers the segment with the resource tracker again
    # (gh-82300); under 'fork' the tracker is the parent's, where the name is
    # registered already, and the parent's unlink unregisters it once.
    shm = shared_memory.SharedMemory(name=name)
    try:
        return page_sum(shm.buf)
    finally:
        shm.close()


def w3b_tables(adapter, ctx, cfg, results, table):
    expected = page_sum(table)
    by_value, shared = [], []
    # Workers forked before the tracker runs would start trackers of their
    # own, which unlink the segment when the worker exits (gh-82300).
    resource_tracker.ensure_running()
    with PoolScope(adapter, WORKERS, ctx) as pool:
        for _ in range(cfg.reps):
            t0 = time.perf_counter()
            got = adapter.submit_all(pool, pages_by_value, [table] * W3B_TASKS)
            by_value.append((time.perf_counter() - t0) * 1e3)
            if got != [expected] * W3B_TASKS:
                raise AssertionError("W3b by value: wrong sums")
            t0 = time.perf_counter()
            shm = shared_memory.SharedMemory(create=True, size=len(table))
            try:
                shm.buf[:len(table)] = table
                got = adapter.submit_all(pool, pages_shared, [shm.name] * W3B_TASKS)
                shared.append((time.perf_counter() - t0) * 1e3)
            finally:
                shm.close()
                shm.unlink()
            if got != [expected] * W3B_TASKS:
                raise AssertionError("W3b shared_memory: wrong sums")
    results.add(adapter.name, "W3b 64 tasks x 16MiB table ms", "ms", by_value)
    results.add(adapter.name + " shared_memory", "W3b 64 tasks x 16MiB table ms", "ms", shared)


def count_locked(value, n):
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def w3b_counter(cfg, results):
    """Two Processes increment one multiprocessing.Value under its lock."""
    ctx = multiprocessing.get_context("fork")
    n, rates = cfg.w3b_increments, []
    for _ in range(cfg.reps):
        value = ctx.Value("q", 0)
        t0 = time.perf_counter()
        processes = [ctx.Process(target=count_locked, args=(value, n)) for _ in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        rates.append(2 * n / (time.perf_counter() - t0))
        if value.value != 2 * n:
            raise AssertionError("W3b counter: increments lost")
    results.add(MVALUE, "W3b counter incr/s", "incr/s", rates)


def put_ints(queue, n):
    for i in range(n):
        queue.put(i)


def put_blobs(queue, count):
    blob = bytes(W6_BLOB)
    for _ in range(count):
        queue.put(blob)


def w6_queue(cfg, results):
    """A Process streams to the parent through multiprocessing.Queue."""
    ctx = multiprocessing.get_context("fork")
    small, big = [], []
    for _ in range(cfg.reps):
        queue = ctx.Queue(1024)
        t0 = time.perf_counter()
        process = ctx.Process(target=put_ints, args=(queue, cfg.w6_small))
        process.start()
        for i in range(cfg.w6_small):
            if queue.get() != i:
                raise AssertionError("W6 queue: out of order")
        small.append(cfg.w6_small / (time.perf_counter() - t0))
        process.join()
        queue = ctx.Queue(16)
        t0 = time.perf_counter()
        process = ctx.Process(target=put_blobs, args=(queue, cfg.w6_blobs))
        process.start()
        for _ in range(cfg.w6_blobs):
            if len(queue.get()) != W6_BLOB:
                raise AssertionError("W6 queue: a blob cut short")
        big.append(cfg.w6_blobs * W6_BLOB / 1e6 / (time.perf_counter() - t0))
        process.join()
    results.add(MQUEUE, "W6 channel u64 msgs/s", "msgs/s", small)
    results.add(MQUEUE, "W6 channel 1MiB MB/s", "MB/s", big)


def write_keys(d, start, n, out):
    t0 = time.perf_counter()
    for key in range(start, start + n):
        d[key] = key
    out.put(time.perf_counter() - t0)


def w7_manager(cfg, results):
    """2 processes write through one Manager().dict() at the same time."""
    ctx = multiprocessing.get_context("fork")
    rates, micros = [], []
    n = cfg.w7_writes
    for _ in range(cfg.reps):
        with ctx.Manager() as manager:
            d = manager.dict()
            out = ctx.Queue()
            processes = [ctx.Process(target=write_keys, args=(d, w * n, n, out))
                         for w in range(WORKERS)]
            t0 = time.perf_counter()
            for p in processes:
                p.start()
            seconds = [out.get() for _ in processes]
            wall = time.perf_counter() - t0
            for p in processes:
                p.join()
            if len(d) != WORKERS * n:
                raise AssertionError("W7: writes lost")
        rates.append(WORKERS * n / wall)
        micros.append(sum(seconds) / (WORKERS * n) * 1e6)
    results.add(MMANAGER, "W7 manager writes/s", "writes/s", rates)
    results.add(MMANAGER, "W7 manager write us", "us", micros)


# --------------------------------------------------------------------------
# Calibration, CLI, driver
# --------------------------------------------------------------------------

def calibrate_w4_iters():
    """Iteration count so that one kernel task takes ~20 ms in this CPython."""
    probe = 10_000
    best = float("inf")
    for _ in range(3):  # best of 3 to dodge scheduler noise
        t0 = time.perf_counter()
        kernel(1, probe)
        best = min(best, time.perf_counter() - t0)
    return max(1, round(probe * TARGET_TASK_SECONDS / best)), best


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=None,
                   help="repeat each measurement N times (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    p.add_argument("--only", default=",".join(ALL_WORKLOADS),
                   help="comma-separated workloads to run, e.g. W1,W3")
    p.add_argument("--json", metavar="PATH", help="write results as a JSON list to PATH")
    p.add_argument("--w4-iters", type=int, default=None,
                   help="kernel iterations per W4 task (default: calibrated to ~20 ms)")
    p.add_argument("--start-method", default="fork",
                   help="start method for W1-W4 (default fork)")
    cfg = p.parse_args(argv)

    cfg.only = [w.strip().upper() for w in cfg.only.split(",") if w.strip()]
    bad = [w for w in cfg.only if w not in ALL_WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from {','.join(ALL_WORKLOADS)}")
    if cfg.reps is None:
        cfg.reps = 1 if cfg.quick else 3
    if cfg.reps < 1:
        p.error("--reps must be >= 1")
    if cfg.w4_iters is not None and cfg.w4_iters < 1:
        p.error("--w4-iters must be >= 1")
    if cfg.start_method not in multiprocessing.get_all_start_methods():
        p.error(f"start method {cfg.start_method!r} not available here "
                f"({multiprocessing.get_all_start_methods()})")

    q = cfg.quick
    cfg.w1_warmup, cfg.w1_calls = (50, 500) if q else (200, 2000)
    cfg.w2_tasks = 20_000 if q else 100_000
    cfg.w3_warmup, cfg.w3_trips = (1, 5) if q else (2, 20)
    cfg.w4_tasks = 16 if q else 64
    cfg.w5_repeats = 3 if q else 5
    cfg.w6_small, cfg.w6_blobs = (50_000, 32) if q else (1_000_000, 256)
    cfg.w7_writes = 2_000 if q else 20_000
    cfg.w3b_increments = 20_000 if q else 200_000
    return cfg


def print_table(rows):
    headers = ("impl", "workload", "median", "min", "max", "unit", "reps")
    table = [headers] + [
        (r["impl"], r["workload"], fmt(r["median"]), fmt(r["min"]), fmt(r["max"]),
         r["unit"], str(r["reps"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    align = ["<", "<", ">", ">", ">", "<", ">"]
    for n, row in enumerate(table):
        print("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None):
    cfg = parse_args(argv)
    ctx = multiprocessing.get_context(cfg.start_method)
    results = Results()
    failures = []

    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on "
          f"{platform.system()} {platform.machine()}, os.cpu_count()={os.cpu_count()}")
    print(f"workers={WORKERS}, reps={cfg.reps}, quick={cfg.quick}, "
          f"start method for W1-W4: {cfg.start_method!r}")

    if "W4" in cfg.only:
        if cfg.w4_iters is None:
            cfg.w4_iters, probe_s = calibrate_w4_iters()
            print(f"W4 calibration: kernel(1, 10000) took {probe_s * 1e3:.2f} ms -> "
                  f"--w4-iters {cfg.w4_iters} (~{TARGET_TASK_SECONDS * 1e3:.0f} ms/task)")
        else:
            print(f"W4: --w4-iters {cfg.w4_iters} (given)")
        print(f"W4: {cfg.w4_tasks} tasks x {cfg.w4_iters} iterations")

    payload = os.urandom(PAYLOAD_BYTES) if "W3" in cfg.only else None
    table = os.urandom(PAYLOAD_BYTES) if "W3B" in cfg.only else None
    methods = [m for m in ("fork", "spawn", "forkserver")
               if m in multiprocessing.get_all_start_methods()]

    plan = []
    for adapter in ADAPTERS:
        if "W1" in cfg.only:
            plan.append(("W1", adapter, lambda a=adapter: w1_latency(a, ctx, cfg, results)))
        if "W2" in cfg.only:
            plan.append(("W2", adapter, lambda a=adapter: w2_throughput(a, ctx, cfg, results)))
        if "W3" in cfg.only:
            plan.append(("W3", adapter,
                         lambda a=adapter: w3_payload(a, ctx, cfg, results, payload)))
        if "W3B" in cfg.only:
            plan.append(("W3b", adapter,
                         lambda a=adapter: w3b_tables(a, ctx, cfg, results, table)))
        if "W4" in cfg.only:
            plan.append(("W4", adapter, lambda a=adapter: w4_scaling(a, ctx, cfg, results)))
        if "W5" in cfg.only:
            for m in methods:
                plan.append((f"W5/{m}", adapter,
                             lambda a=adapter, m=m: w5_startup(a, m, cfg, results)))

    if "W5" in cfg.only:
        process = argparse.Namespace(name=MPROC)
        for m in methods:
            plan.append((f"W5/{m}", process, lambda m=m: w5_process(m, cfg, results)))

    if "W3B" in cfg.only:
        value = argparse.Namespace(name=MVALUE)
        plan.append(("W3b", value, lambda: w3b_counter(cfg, results)))

    if "W6" in cfg.only:
        queue = argparse.Namespace(name=MQUEUE)
        plan.append(("W6", queue, lambda: w6_queue(cfg, results)))

    if "W7" in cfg.only:
        manager = argparse.Namespace(name=MMANAGER)
        plan.append(("W7", manager, lambda: w7_manager(cfg, results)))

    # Run workload by workload (both impls back to back) for fairer comparison.
    order = {w: i for i, w in enumerate(ALL_WORKLOADS)}
    plan.sort(key=lambda item: order[item[0][:2]])
    for label, adapter, run in plan:
        print(f"[{label}] {adapter.name} ...", flush=True)
        try:
            run()
        except Exception:  # keep going: one broken pool should not lose all results
            failures.append((label, adapter.name))
            traceback.print_exc()

    print()
    print(f"Results (start method for W1-W4: {cfg.start_method!r}; "
          f"median/min/max over {cfg.reps} rep(s))")
    print_table(results.rows)

    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump(results.rows, f, indent=2)
        print(f"\nwrote {len(results.rows)} results to {cfg.json}")
    if failures:
        print(f"\nFAILED: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
