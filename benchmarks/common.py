"""Shared helpers of the benchmarks: CPU settings, timing, child processes, review lengths, tables and JSON.

Nothing here imports paddle or torch. The CPU settings that matter (MKL_DEBUG_CPU_TYPE, OMP_NUM_THREADS)
must be in the environment before either is imported, so each benchmark case runs in its own child process
(`run_child`) with its own environment.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from reproduction.machine import (  # noqa: F401  (re-exported: the record every results file holds)
    cpu_model, load_average, machine_info, package_versions, pinned_versions, versions)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------------- settings
def quiet_paddle() -> None:
    """Less Paddle log noise (glog INFO lines, the OMP_NUM_THREADS warning is printed by Paddle itself)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("GLOG_v", "0")


# ------------------------------------------------------------------------------------------------------- timing
def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(fn: Callable[[], object], steps: int, warmup: int = 1, sync: Callable[[], None] = lambda: None) -> dict:
    """Run `fn` warmup + steps times; per-call wall seconds and the cores used (CPU seconds / wall seconds).

    `min_s` is the figure to compare on a shared machine (least disturbed run), `median_s` the typical one;
    `cpu_s_per_step` (process CPU time per call) hardly depends on other processes: with one thread it is
    the wall time the step would take on a quiet core.
    """
    for _ in range(warmup):
        fn()
    sync()
    times = []
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall0
    return {
        "steps": steps,
        "times_s": [round(t, 4) for t in times],
        "min_s": min(times),
        "median_s": statistics.median(times),
        "mean_s": statistics.fmean(times),
        "cores_used": round((cpu_seconds() - cpu0) / wall, 2) if wall > 0 else None,
        "cpu_s_per_step": (cpu_seconds() - cpu0) / steps,
    }


# ---------------------------------------------------------------------------------------------- child processes
def cpu_env(threads: int = 0) -> Dict[str, str]:
    """A child's CPU settings, which must be in place before paddle or torch is imported: `threads` OMP/MKL
    threads (0: every core; Paddle's dygraph MKL runs on one thread without OMP_NUM_THREADS) and
    MKL_DEBUG_CPU_TYPE=5 (Paddle's bundled MKL takes a slow path on AMD CPUs without it)."""
    n = str(threads or os.cpu_count() or 1)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "MKL_DEBUG_CPU_TYPE": "5", "GLOG_minloglevel": "2"}


def run_child(script: str, args: Sequence[str], env: Optional[Dict[str, Optional[str]]] = None,
              timeout: float = 1800) -> dict:
    """Run `python script args... --child_output FILE` in a fresh process and return the JSON it wrote there.

    `env` changes the child's environment (None: remove the variable). The child runs in a temporary folder
    (profiler traces and the like stay out of the repository); its peak
    RSS (ru_maxrss of the waited-for child) is added as `child_peak_rss_mib`.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out_file, log_file = os.path.join(tmp, "result.json"), os.path.join(tmp, "log.txt")
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = ROOT + os.pathsep + child_env.get("PYTHONPATH", "")
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = value
        cmd = [sys.executable, os.path.abspath(script), *args, "--child_output", out_file]
        with open(log_file, "w") as log:
            proc = subprocess.Popen(cmd, env=child_env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        if proc.returncode != 0 or not os.path.exists(out_file):
            with open(log_file) as f:
                tail = "\n".join(f.read().strip().splitlines()[-25:])
            return {"error": f"child exited with {proc.returncode}", "log_tail": tail}
        with open(out_file) as f:
            result = json.load(f)
        result["child_peak_rss_mib"] = round(usage.ru_maxrss / 1024.0, 1)
        return result


def write_child_output(path: Optional[str], result: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(result, f)


# ------------------------------------------------------------------------------------------------ review lengths
def review_lengths(n: int, max_len: int, median: float = 80.0, sigma: float = 0.9, seed: int = 0) -> List[int]:
    """Token counts of `n` reviews: log-normal (median `median`, shape `sigma`), at least 4, truncated to max_len.

    The defaults imitate Amazon Electronics reviews (median 60-100 words, long tail: about 11 % over 256 tokens
    and 2.5 % over 512), in word-level tokens.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=float(np.log(median)), sigma=sigma, size=n)
    return [int(x) for x in np.clip(np.round(raw), 4, max_len)]


def make_batches(lengths: Sequence[int], batch_size: int, strategy: str, seed: int = 0, pool_batches: int = 50,
                 multiple_of: int = 8, max_len: int = 512) -> List[dict]:
    """Group review indices into batches and give each batch its padded length.

    strategy: "pad_max" (random batches, every batch padded to max_len), "dynamic" (random batches padded to
    their longest review, rounded up to `multiple_of`: `fastformer.encoding.DataCollator`), "bucketed" (shuffle,
    then sort by length inside pools of `pool_batches` batches, cut into batches, shuffle the batches; dynamic
    padding as above).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    if strategy == "bucketed":
        pool = batch_size * pool_batches
        order = np.concatenate([
            chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
            for chunk in (order[i:i + pool] for i in range(0, len(order), pool))
        ])
    elif strategy not in ("pad_max", "dynamic"):
        raise ValueError(f"unknown batching strategy {strategy!r}")
    batches = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        longest = max(lengths[i] for i in idx)
        padded = max_len if strategy == "pad_max" else min(max_len, -(-longest // multiple_of) * multiple_of)
        batches.append({"lengths": [int(lengths[i]) for i in idx], "padded_len": int(padded)})
    if strategy == "bucketed":
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


# -------------------------------------------------------------------------------------------------- table, json
def format_table(rows: Iterable[dict], columns: Sequence[tuple]) -> str:
    """Plain-text table; columns are (key, header, format) with format a str.format spec or None."""
    rows = list(rows)
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            if value is None or value == "":
                line.append("-")
            elif fmt:
                line.append(format(value, fmt))
            else:
                line.append(str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = []
    for n, line in enumerate(cells):
        out.append("  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def result_header(benchmark: str, script: str, args, argv: Optional[Sequence[str]] = None) -> dict:
    """The first keys of every result JSON: what ran (the command line), with which settings, on which machine and
    package versions. Installed versions that differ from the requirements' pins are printed as a warning and listed
    under "packages" / "mismatches": such figures are not those of the pinned set."""
    module = os.path.splitext(os.path.relpath(os.path.abspath(script), ROOT))[0].replace(os.sep, ".")
    command = " ".join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
    settings = {k: v for k, v in vars(args).items() if not k.startswith("child") and k != "work_dir"}
    packages = package_versions()
    if packages["mismatches"]:
        listed = ", ".join(f"{name} {v['installed'] or 'not installed'} (pinned {v['pinned']})"
                           for name, v in sorted(packages["mismatches"].items()))
        print(f"WARNING: installed packages differ from the pins of requirements*.txt: {listed}; these figures are "
              "not those of the pinned set", file=sys.stderr)
    return {"benchmark": benchmark, "command": command, "settings": settings, "machine": machine_info(),
            "packages": packages}


def write_json(path: Optional[str], payload: dict) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"wrote {path}")


def write_results(results_dir: str, stem: str, payload: dict, table: str) -> None:
    """RESULTS_DIR/<stem>.json (the payload) and <stem>.md (the markdown table), each written atomically; prints the
    table."""
    from fastformer.fileio import atomic_write, write_json as write_json_atomically

    os.makedirs(results_dir, exist_ok=True)
    write_json_atomically(os.path.join(results_dir, f"{stem}.json"), payload)
    atomic_write(os.path.join(results_dir, f"{stem}.md"), table + "\n")
    print(table)
