#!/usr/bin/env python3
"""Side-by-side comparison for issue 5: procpool, its floor, Python's pools, rayon.

One command runs both halves and prints one Markdown table:

  cargo bench --bench compare -- --json ...   procpool, the raw floor, rayon (W1-W5)
  python3 bench/python_pools.py --json ...     ProcessPoolExecutor, multiprocessing.Pool

Each row is one figure (median over repetitions, spread min-max), with the
target from issue 5 where there is one, the measured ratio and PASS/MISS.
Progress goes to stderr, the table to stdout (and to --markdown PATH).
Only the standard library is used.

Run from anywhere in the repository:
    python3 bench/compare.py                      # 5 reps Rust, 3 reps Python
    python3 bench/compare.py --reps 3
    python3 bench/compare.py --quick              # smoke run: smaller counts, 1 rep
    python3 bench/compare.py --only W1,W3 --markdown perf.md
    python3 bench/compare.py --json-dir out/ --no-run   # re-render saved results
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUST_JSON = "rust.json"
PYTHON_JSON = "python.json"
PPE = "ProcessPoolExecutor"
MPP = "multiprocessing.Pool"
COLUMNS = ("procpool", "floor", "procspawn", PPE, MPP, "rayon")
POOLS = ("procpool", "floor", "procspawn", PPE, MPP)  # W1-W3, W5
CPU = ("procpool", PPE, MPP, "rayon")  # W4


# --------------------------------------------------------------------------
# Formatting numbers
# --------------------------------------------------------------------------

def human(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}".rstrip("0").rstrip(".") if v >= 1 else f"{v:.3f}"


# --------------------------------------------------------------------------
# Figures: one table row each
# --------------------------------------------------------------------------

def same(workload, impls=POOLS):
    """Cells that all read `workload`, for the given columns."""
    return {col: (col, workload) for col in impls}


def ratio_to_floor(limit, at_most):
    """Target: procpool's median as a multiple of the floor's."""
    def check(cells):
        ours, floor = cells.get("procpool"), cells.get("floor")
        if not ours or not floor:
            return None
        return ours["median"] / floor["median"], "× floor"
    return check, limit, at_most, ("≤" if at_most else "≥") + f" {limit}× floor"


def ratio_to_python(limit):
    """Target: procpool's median as a multiple of the faster Python pool's."""
    def check(cells):
        ours = cells.get("procpool")
        python = [cells[col]["median"] for col in (PPE, MPP) if cells.get(col)]
        if not ours or not python:
            return None
        return ours["median"] / max(python), "× Python"
    return check, limit, False, f"≥ {limit}× the faster Python pool"


def absolute(limit, unit):
    """Target: procpool's median against a fixed figure."""
    def check(cells):
        ours = cells.get("procpool")
        return (ours["median"], unit) if ours else None
    return check, limit, False, f"≥ {limit:,} {unit}"


def own_value(limit, at_most):
    """Target: procpool's own figure (already a ratio)."""
    def check(cells):
        ours = cells.get("procpool")
        return (ours["median"], "") if ours else None
    return check, limit, at_most, ("≤ " if at_most else "≥ ") + f"{limit}"


FIGURES = [
    ("W1 one no-op round trip, median (µs)", same("W1 median us"), ratio_to_floor(1.5, True)),
    ("W1 one no-op round trip, p99 (µs)", same("W1 p99 us"), None),
    # The README's way: each call a `block_on` on the main thread, against W1's floor.
    ("W1 from block_on on the main thread, median (µs; floor: W1's)",
     {"procpool": ("procpool", "W1 block_on median us"), "floor": ("floor", "W1 median us")},
     ratio_to_floor(1.5, True)),
    ("W1 from block_on on the main thread, p99 (µs; floor: W1's)",
     {"procpool": ("procpool", "W1 block_on p99 us"), "floor": ("floor", "W1 p99 us")}, None),
    ("W2 no-ops submitted at once (tasks/s; floor: pipelined echo, batched)",
     same("W2 submit tasks/s"), absolute(500_000, "tasks/s")),
    ("W2 floor, one write per frame (msgs/s)",
     {"floor": ("floor", "W2 unbatched msgs/s")}, None),
    ("W2 map, procpool untuned; Python chunksize N/(4×workers) (items/s)",
     same("W2 map items/s", ("procpool", PPE, MPP)), absolute(10_000_000, "items/s")),
    ("W3 16 MiB echo, procpool::Bytes (MB/s; floor: raw socketpair; procspawn: a "
     "serde_bytes struct; Python: bytes)",
     {**same("W3 echo 16MiB MB/s"), "procpool": ("procpool", "W3 echo Bytes 16MiB MB/s")},
     ratio_to_floor(0.9, False)),
    ("W3 16 MiB echo, a plain Vec<u8> (MB/s; procspawn: a serde_bytes struct; Python: bytes)",
     {**same("W3 echo 16MiB MB/s"), "procpool": ("procpool", "W3 echo Vec<u8> 16MiB MB/s")},
     ratio_to_python(1.0)),
    ("W3 16 MiB echo, a serde_bytes field in a struct (MB/s)",
     {"procpool": ("procpool", "W3 echo 16MiB MB/s")}, None),
    ("W3 16 MiB echo over raw pipes (MB/s)",
     {"floor": ("floor-pipes", "W3 echo 16MiB MB/s")}, None),
    ("W3b 64 tasks each reading a 16 MiB table, sent by value (ms)",
     {"procpool": ("procpool by value", "W3b 64 tasks x 16MiB table ms"),
      PPE: (PPE, "W3b 64 tasks x 16MiB table ms"),
      MPP: (MPP, "W3b 64 tasks x 16MiB table ms")}, None),
    ("W3b the same table shared (ms; procpool: SharedBytes; Python: shared_memory)",
     {"procpool": ("procpool", "W3b 64 tasks x 16MiB table ms"),
      PPE: (PPE + " shared_memory", "W3b 64 tasks x 16MiB table ms"),
      MPP: (MPP + " shared_memory", "W3b 64 tasks x 16MiB table ms")}, None),
    ("W3b procpool by value / SharedBytes (×)",
     {"procpool": ("procpool", "W3b shared / by value speedup")}, own_value(10, False)),
    ("W3b shared counter from 2 workers (increments/s; procpool: SharedValue::fetch_add; "
     "Python: Value under get_lock())",
     {"procpool": ("procpool", "W3b counter incr/s"),
      MPP: ("multiprocessing.Value", "W3b counter incr/s")}, None),
    ("W4 wall, 1 worker / thread (ms)", same("W4 T1 ms", CPU), None),
    ("W4 wall, 2 workers / threads (ms)", same("W4 T2 ms", CPU), None),
    ("W4 efficiency T1/(2×T2)", same("W4 efficiency T1/(2*T2)", CPU), own_value(0.97, False)),
    ("W4 procpool 2-worker wall / rayon 2-thread wall",
     {"procpool": ("procpool", "W4 T2 / rayon T2")}, own_value(1.03, True)),
    ("W5 start-up: pool of 2 to first result (ms; Python: fork)",
     {"procpool": ("procpool", "W5 startup ms"), "floor": ("floor", "W5 startup ms"),
      PPE: (PPE, "W5 startup ms (fork)"), MPP: (MPP, "W5 startup ms (fork)")},
     ratio_to_floor(2, True)),
    ("W5 Process: procpool::spawn start to result (ms; floor: one bare child; "
     "Python: multiprocessing.Process, fork, result over a Pipe)",
     {"procpool": ("procpool", "W5 process ms"), "floor": ("floor", "W5 process ms"),
      MPP: ("multiprocessing.Process", "W5 process ms (fork)")},
     ratio_to_floor(1.5, True)),
    # Only when PROCPOOL_TEST_SSH / PROCPOOL_TEST_SRUN are set (launchers.sh).
    ("W1 through ssh (loopback sshd), median (µs)",
     {"procpool": ("procpool", "W1 ssh median us")}, None),
    ("W1 through ssh, p99 (µs)", {"procpool": ("procpool", "W1 ssh p99 us")}, None),
    ("W1 through srun (one-node Slurm), median (µs)",
     {"procpool": ("procpool", "W1 srun median us")}, None),
    ("W1 through srun, p99 (µs)", {"procpool": ("procpool", "W1 srun p99 us")}, None),
    ("W2 map over 2 workers through ssh (items/s)",
     {"procpool": ("procpool", "W2 ssh map items/s")}, None),
    ("W2 map over 2 workers through srun (items/s)",
     {"procpool": ("procpool", "W2 srun map items/s")}, None),
    ("W5 start-up through ssh: pool of 2 to first result (ms)",
     {"procpool": ("procpool", "W5 ssh startup ms")}, None),
    ("W5 start-up through srun: pool of 2 to first result (ms)",
     {"procpool": ("procpool", "W5 srun startup ms")}, None),
    ("W5 Process, Python spawn (ms)",
     {MPP: ("multiprocessing.Process", "W5 process ms (spawn)")}, None),
    ("W5 start-up, Python spawn (ms)", same("W5 startup ms (spawn)", (PPE, MPP)), None),
    ("W5 start-up, Python forkserver (ms)", same("W5 startup ms (forkserver)", (PPE, MPP)), None),
    ("W6 channel, task to parent, u64 (msgs/s; floor: one write per frame; "
     "Python: multiprocessing.Queue)",
     {"procpool": ("procpool", "W6 channel u64 msgs/s"),
      "floor": ("floor", "W6 channel u64 msgs/s"),
      MPP: ("multiprocessing.Queue", "W6 channel u64 msgs/s")},
     absolute(1_000_000, "msgs/s")),
    ("W6 channel, task to parent, 1 MiB messages (MB/s; Python: multiprocessing.Queue)",
     {"procpool": ("procpool", "W6 channel 1MiB MB/s"),
      "floor": ("floor", "W6 channel 1MiB MB/s"),
      MPP: ("multiprocessing.Queue", "W6 channel 1MiB MB/s")},
     ratio_to_floor(0.5, False)),
    ("W7 manager dict writes from 2 workers at once, each call waited for "
     "(writes/s; Python: Manager().dict())",
     {"procpool": ("procpool", "W7 manager writes/s"),
      MPP: ("multiprocessing.Manager", "W7 manager writes/s")},
     ratio_to_python(5)),
    ("W7 the same, procpool's calls sent ahead (`Call::send`), answers waited for after "
     "(writes/s; Python: Manager().dict(), which has no such form)",
     {"procpool": ("procpool sent ahead", "W7 manager writes/s"),
      MPP: ("multiprocessing.Manager", "W7 manager writes/s")},
     ratio_to_python(5)),
    ("W7 manager dict write, round trip per call (µs; Python: Manager().dict())",
     {"procpool": ("procpool", "W7 manager write us"),
      MPP: ("multiprocessing.Manager", "W7 manager write us")},
     None),
]


def cell_text(row):
    if row is None:
        return "—"
    if row["reps"] > 1:
        return f"{human(row['median'])} ({human(row['min'])}–{human(row['max'])})"
    return human(row["median"])


def verdict(target, cells):
    """(target text, measured text, PASS/MISS/n/a)."""
    if target is None:
        return "", "", ""
    check, limit, at_most, text = target
    got = check(cells)
    if got is None:
        return text, "not measured", "n/a"
    value, unit = got
    ok = value <= limit if at_most else value >= limit
    if unit in ("× floor", "× Python"):
        measured = f"{value:.2f}{unit}"
    elif unit == "":
        measured = f"{value:.3f}"
    else:
        measured = f"{human(value)} {unit} ({value / limit:.2f}× target)"
    return text, measured, "PASS" if ok else "MISS"


def render_table(rows):
    index = {(r["impl"], r["workload"]): r for r in rows}
    header = ["figure", *COLUMNS, "target (issue 5)", "measured", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cell_map, target in FIGURES:
        cells = {col: index.get(key) for col, key in cell_map.items()}
        if not any(cells.values()):
            continue  # workload not run
        texts = [cell_text(cells.get(col)) if col in cell_map else "" for col in COLUMNS]
        t, m, v = verdict(target, cells)
        lines.append("| " + " | ".join([label, *texts, t, m, f"**{v}**" if v else ""]) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Machine facts and run notes
# --------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def command_output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average():
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def header(meta, rust_reps, python_reps):
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    spread = ("median (min–max) over repetitions" if max(rust_reps, python_reps) > 1
              else "1 repetition, so no spread")
    return "\n".join([
        "## procpool side by side (issue 5)",
        "",
        f"- date: {meta['date']}",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical cores ({affinity} usable), "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"- {command_output(['rustc', '-V'])}; Python {platform.python_version()}",
        f"- load average (1/5/15 min) before the run: {meta['load_before']}; "
        f"after: {meta['load_after']} "
        "(well above 0 before means something else was using the CPU)",
        f"- 2 workers; repetitions: Rust {rust_reps}, Python {python_reps}"
        f"{' (--quick: smaller counts)' if meta['quick'] else ''}; cells: {spread}",
    ])


def notes(rust_out, python_out, quick):
    n = "20,000" if quick else "100,000"
    lines = [
        "",
        "Notes:",
        "- floor: the channel procpool uses without the pool: a Unix socketpair (4 MiB buffers) "
        "to the same executable re-executed in an echo mode, parent driven by tokio. "
        "W2's floor writes 1,024 frames per write call (the child answers once per burst); "
        "the unbatched row writes one frame per call on both sides.",
        "- W1 is called from a spawned tokio task, as a request handler would; "
        "\"W1 from block_on\" makes the same calls from `runtime.block_on` on the main thread, "
        "as the README's example calls the pool (a loop of awaits inside one `block_on`), so every hop "
        "to and from the pool's "
        "dispatcher is a cross-thread wake-up. Its ratio is to the same floor as W1's "
        "(measured from the spawned task).",
        f"- W2: {n} no-ops. Python's W1-W4 use the fork start method; W5's main row is fork.",
    ]
    iters = [re.search(r"--w4-iters (\d+)", out) for out in (rust_out, python_out)]
    if any(iters):
        rust_iters, py_iters = (f"{int(m.group(1)):,}" if m else "?" for m in iters)
        lines.append(
            "- W4: each language calibrates its own kernel iterations to ~20 ms per task "
            f"(Rust {rust_iters}, Python {py_iters} iterations): the kernels run at "
            "very different speeds, so W4 wall times compare pools, not languages; "
            "efficiency is comparable across columns.")
        lines.append(f"- W4 kernel: {kernel_check(rust_out)}")
    lines.append("- verdicts compare medians; this machine is noisy (±20% between runs), so "
                 "a verdict near its threshold can flip between runs.")
    return "\n".join(lines)


def kernel_check(rust_out):
    """Checks that Python's kernel computes what Rust's printed."""
    m = re.search(r"W4 kernel check: kernel\((\d+), (\d+)\) = (\d+)", rust_out)
    if not m:
        return "not checked (Rust printed no check value)"
    seed, iters, rust_value = (int(g) for g in m.groups())
    sys.dont_write_bytecode = True  # leave no __pycache__ in the repository
    spec = importlib.util.spec_from_file_location("python_pools", HERE / "python_pools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    py_value = module.kernel(seed, iters)
    if py_value == rust_value:
        return f"kernel({seed}, {iters}) = {rust_value} in both Rust and Python (same function)."
    return f"MISMATCH: kernel({seed}, {iters}) = {rust_value} in Rust, {py_value} in Python!"


# --------------------------------------------------------------------------
# Running the two halves
# --------------------------------------------------------------------------

def run(cmd, log_path):
    """Runs cmd in the repository root; its stdout goes to stderr and to log_path."""
    print(f"\n$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    captured = []
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stderr.write(line)
            captured.append(line)
    text = "".join(captured)
    log_path.write_text(text)
    if proc.returncode != 0:
        print(f"FAILED (exit {proc.returncode}): {' '.join(cmd)}", file=sys.stderr)
    return proc.returncode, text


def passthrough(cfg):
    args = []
    if cfg.reps is not None:
        args += ["--reps", str(cfg.reps)]
    if cfg.quick:
        args.append("--quick")
    if cfg.only:
        args += ["--only", cfg.only]
    return args


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"no results from {path}: {err}", file=sys.stderr)
        return []


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions for both halves (default: Rust 5, Python 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smaller counts, 1 repetition")
    p.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W3")
    p.add_argument("--markdown", metavar="PATH", help="also write the table to PATH")
    p.add_argument("--json-dir", metavar="DIR",
                   help=f"keep raw results here ({RUST_JSON}, {PYTHON_JSON}, logs); "
                        "default: a temporary directory")
    p.add_argument("--no-run", action="store_true",
                   help="do not run anything: render the table from --json-dir")
    cfg = p.parse_args(argv)
    if cfg.reps is not None and cfg.reps < 1:
        p.error("--reps must be >= 1")
    if cfg.no_run and not cfg.json_dir:
        p.error("--no-run needs --json-dir")
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_average(),
        "quick": cfg.quick,
    }
    with tempfile.TemporaryDirectory(prefix="procpool-compare-") as tmp:
        out = Path(cfg.json_dir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        rust_json, python_json, meta_json = out / RUST_JSON, out / PYTHON_JSON, out / "meta.json"
        rust_log, python_log = out / "rust.log", out / "python.log"
        failed = []
        if not cfg.no_run:
            rust_cmd = ["cargo", "bench", "--bench", "compare", "--",
                        "--json", str(rust_json), *passthrough(cfg)]
            python_cmd = [sys.executable, str(HERE / "python_pools.py"),
                          "--json", str(python_json), *passthrough(cfg)]
            for cmd, log in ((rust_cmd, rust_log), (python_cmd, python_log)):
                if run(cmd, log)[0] != 0:
                    failed.append(cmd[0])
            meta["load_after"] = load_average()
            meta_json.write_text(json.dumps(meta))
        else:
            meta = json.loads(meta_json.read_text()) if meta_json.exists() else {
                "date": "?", "load_before": "?", "load_after": "?", "quick": False}
        rust_rows, python_rows = load(rust_json), load(python_json)
        rust_out = rust_log.read_text() if rust_log.exists() else ""
        python_out = python_log.read_text() if python_log.exists() else ""

    reps = lambda rows: max((r["reps"] for r in rows), default=0)
    report = "\n".join([
        header(meta, reps(rust_rows), reps(python_rows)),
        "",
        render_table(rust_rows + python_rows),
        notes(rust_out, python_out, meta["quick"]),
    ])
    print()
    print(report)
    if cfg.markdown:
        Path(cfg.markdown).write_text(report + "\n")
        print(f"\nwrote {cfg.markdown}", file=sys.stderr)
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (the table shows what was measured)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
