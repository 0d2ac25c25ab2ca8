"""Shared helpers of the benchmarks: CPU settings, timing, child processes, review lengths, tables and JSON.

Nothing here imports paddle or torch. The CPU settings that matter (MKL_DEBUG_CPU_TYPE, OMP_NUM_THREADS)
must be in the environment before either is imported, so each benchmark case runs in its own child process
(`run_child`) with its own environment.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------------- settings
def quiet_paddle() -> None:
    """Less Paddle log noise (glog INFO lines, the OMP_NUM_THREADS warning is printed by Paddle itself)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("GLOG_v", "0")


# ------------------------------------------------------------------------------------------------------ machine
def load_average() -> List[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What the figures were taken on; `load_average` > 0.5 means another process shared the cores."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1_5_15min": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def pinned_versions(files: Sequence[str] = ("requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt")
                    ) -> Dict[str, str]:
    """`name==version` pins of the requirement files that apply to this Python (environment markers evaluated; names
    lower-cased, `_` as `-`); options and comments skipped."""
    from packaging.requirements import Requirement

    pins = {}
    for name in files:
        path = os.path.join(ROOT, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split(" #", 1)[0].strip()
                if "==" not in line or line.startswith(("#", "-")):
                    continue
                req = Requirement(line)
                if req.marker is None or req.marker.evaluate():
                    pins[req.name.lower().replace("_", "-")] = str(req.specifier).replace("==", "", 1)
    return pins


def package_versions() -> dict:
    """Installed versions of every pinned package, and those that differ from the pin ("mismatches"). A pin without
    a local part matches any local build of that version (torch==2.13.0 matches 2.13.0+cpu)."""
    from importlib import metadata

    installed, mismatches = {}, {}
    for package, pinned in pinned_versions().items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = None
        installed[package] = version
        if version != pinned and not ("+" not in pinned and version and version.split("+")[0] == pinned):
            mismatches[package] = {"pinned": pinned, "installed": version}
    return {"installed": installed, "mismatches": mismatches}


def versions(*modules: str) -> Dict[str, str]:
    out = {}
    for name in modules:
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
            out[name] = "not installed"
    return out


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
