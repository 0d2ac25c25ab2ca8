"""Data-parallel training (Paddle's collective engine) against one process: same batches, steps, weights, metrics.

    python -m tools.check_data_parallel [--processes 2] [--per_device_train_batch_size 32] [--output FILE] \
        [-- train.py flags, e.g. --hidden_size 64]

Trains `train.py configs/tiny.json` (synthetic reviews, dropout off) twice: P processes started by
`python -m paddle.distributed.launch --nproc_per_node P` at B reviews per process (gloo on CPU; on a GPU build each
process takes a GPU), then one process at P x B. The P-process run goes first and generates the demo reviews itself
(the first process only). Reported as JSON:
  * per epoch, whether the processes' batches are the one process's batches cut into P slices, step by step;
  * optimizer steps of both runs, and of one process at B (P times as many);
  * the largest weight difference after every epoch (apart: the softmax-shift biases, whose gradient is rounding
    noise only, see `fastformer.modeling.SHIFT_INVARIANT_BIASES`), and of the final models' dev logits;
  * dev/test metrics of both runs (equal), the processes' dropout seeds (distinct), and each run's wall time
    (whole command) and training time.
Exit status 1 when a check fails. `tests/training/test_distributed.py` runs this on the tiny config; the figures in the
README's "Several GPUs or machines" come from `--output benchmarks/results/data_parallel_cpu.json`.

`python -m tools.check_data_parallel --worker RECORD_DIR [train.py arguments]` is what each launched process runs:
`train.main`, recording the batches the training sampler gave it and the results.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "tiny.json")
TOLERANCE = 1e-5  # weights and logits (float32 rounding, amplified a little by Adam)


# ----------------------------------------------------------------------------------------------- worker side
def worker(record_dir: str, train_argv: Sequence[str]) -> None:
    """train.main(train_argv), writing RECORD_DIR/pid.<rank> first and RECORD_DIR/rank<rank>.json at the end."""
    import train  # before paddle: thread settings

    from fastformer.training.sampler import EpochBatchSampler

    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
    os.makedirs(record_dir, exist_ok=True)
    with open(os.path.join(record_dir, f"pid.{rank}"), "w") as f:
        f.write(str(os.getpid()))
    batches: Dict[str, List[List[int]]] = {}
    plain_iter = EpochBatchSampler.__iter__

    def recording_iter(self):
        epoch = batches.setdefault(str(self.epoch), [])
        epoch.clear()  # an epoch iterated again (a resume) is recorded once
        for batch in plain_iter(self):
            epoch.append([int(i) for i in batch])
            yield batch

    EpochBatchSampler.__iter__ = recording_iter
    results = train.main(list(train_argv))
    with open(os.path.join(record_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "batches": batches, "results": results}, f)


# ----------------------------------------------------------------------------------------------- launcher side
def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _stop_workers(record_dir: str) -> None:
    """SIGKILL the recorded worker processes still alive (launch starts them in their own sessions)."""
    for path in glob.glob(os.path.join(record_dir, "pid.*")):
        try:
            pid = int(open(path).read())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"check_data_parallel" not in f.read():
                    continue  # gone, and the pid reused by another program
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def run_training(processes: int, train_argv: Sequence[str], work_dir: str, name: str, timeout: float = 600,
                 env: Optional[Dict[str, str]] = None) -> dict:
    """Run the worker as one plain process (processes=1) or through paddle.distributed.launch; returns
    {"wall_seconds", "ranks": [record of rank 0, 1, ...]}. RuntimeError with the log's tail when it fails or
    times out; no process is left behind."""
    record_dir = os.path.join(work_dir, name, "record")
    log_dir = os.path.join(work_dir, name, "log")
    os.makedirs(log_dir, exist_ok=True)
    script = [os.path.abspath(__file__), "--worker", record_dir, *train_argv]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes),
               "--log_dir", log_dir, *script]
    child_env = dict(os.environ, GLOG_minloglevel="2", **(env or {}))
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, child_env.get("PYTHONPATH")]))  # train.py, benchmarks
    log_path = os.path.join(log_dir, "launch.log")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:  # the launcher stops its workers on SIGTERM
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            _stop_workers(record_dir)
    wall = time.perf_counter() - start
    records = [os.path.join(record_dir, f"rank{r}.json") for r in range(processes)]
    if code != 0 or not all(os.path.isfile(p) for p in records):
        logs = "\n".join(f"--- {os.path.basename(p)}:\n{_tail(p)}"
                         for p in [log_path, *sorted(glob.glob(os.path.join(log_dir, "workerlog.*")))])
        what = f"timed out after {timeout:.0f} s" if code is None else f"exit status {code}"
        raise RuntimeError(f"{name}: {' '.join(cmd)}: {what}\n{logs}")
    ranks = []
    for path in records:
        with open(path) as f:
            ranks.append(json.load(f))
    return {"wall_seconds": round(wall, 2), "ranks": ranks}


# ---------------------------------------------------------------------------------------------------- compare
def compare_batches(one: Dict[str, List[List[int]]], ranks: Sequence[Dict[str, List[List[int]]]]) -> dict:
    """Per epoch: do the ranks' step-s batches, concatenated in rank order, give the one process's step-s batch?"""
    report = {}
    for epoch, one_batches in sorted(one.items(), key=lambda kv: int(kv[0])):
        per_rank = [r.get(epoch, []) for r in ranks]
        steps_equal = all(len(b) == len(one_batches) for b in per_rank)
        sliced = steps_equal and all(
            sum((b[s] for b in per_rank), []) == one_batches[s] for s in range(len(one_batches))
        )
        union = sorted(i for b in per_rank for batch in b for i in batch)
        # an index in several ranks is fine only where the one process also draws it several times (class balance)
        one_counts: Dict[int, int] = {}
        for batch in one_batches:
            for i in batch:
                one_counts[i] = one_counts.get(i, 0) + 1
        in_ranks: Dict[int, int] = {}
        for b in per_rank:
            for i in set(i for batch in b for i in batch):
                in_ranks[i] = in_ranks.get(i, 0) + 1
        shared = [i for i, n in in_ranks.items() if n > 1]
        report[epoch] = {
            "steps": len(one_batches),
            "rank_steps": [len(b) for b in per_rank],
            "rank_batch_sizes": [sorted(set(len(x) for x in b)) for b in per_rank],
            "batches_are_slices_of_one_process": sliced,
            "union_is_one_process_epoch": union == sorted(i for batch in one_batches for i in batch),
            "shared_indices_drawn_once_by_one_process": sum(1 for i in shared if one_counts.get(i, 0) < 2),
        }
    return report


def _weights(folder: str) -> Dict[str, "object"]:
    """The weights of a checkpoint (model_state.pdparams) or of a model folder (model.safetensors), as numpy."""
    from fastformer.model_folder import WEIGHTS_FILE, load_model_dir

    import paddle

    if os.path.isfile(os.path.join(folder, WEIGHTS_FILE)):  # task.save_model_dir's folder: loaded with its checks
        model, _ = load_model_dir(folder)
        return {name: value.numpy() for name, value in model.state_dict().items()}
    return paddle.load(os.path.join(folder, "model_state.pdparams"), return_numpy=True)


def compare_weights(dir_a: str, dir_b: str) -> dict:
    """Largest abs weight difference, apart for the softmax-shift biases."""
    import numpy as np

    from fastformer.modeling import SHIFT_INVARIANT_BIASES

    a, b = _weights(dir_a), _weights(dir_b)
    if a.keys() != b.keys():
        raise ValueError(f"{dir_a} and {dir_b} hold different parameters")
    diffs = {k: float(np.max(np.abs(a[k].astype("float64") - b[k]))) for k in a}
    worst = max((k for k in diffs if not k.endswith(SHIFT_INVARIANT_BIASES)), key=diffs.get)
    shift = [diffs[k] for k in diffs if k.endswith(SHIFT_INVARIANT_BIASES)]
    return {"max_abs_diff": diffs[worst], "worst_param": worst,
            "shift_invariant_bias_max_abs_diff": max(shift) if shift else None}


def dropout_seeds(checkpoint: str, processes: int) -> List[int]:
    """The seed of each process's Paddle generator (dropout), from the checkpoint's RNG states."""
    import fastformer  # noqa: F401  (before paddle: MKL settings)
    import paddle

    states = paddle.load(os.path.join(checkpoint, f"rng_state_{processes}.pth"), return_numpy=True)
    return [int(state["cpu"].current_seed()) for state in states]


def compare_logits(model_a: str, model_b: str, data_dir: str, batch_size: int = 64) -> float:
    """Largest abs difference of the two model folders' logits on the dev split."""
    from fastformer.encoding import DataCollator, encode_texts
    from fastformer.model_folder import load_model_dir

    import numpy as np
    import paddle

    from fastformer.splits import read_split

    texts, _ = read_split(os.path.join(data_dir, "dev.jsonl"))
    worst = 0.0
    (ma, tok), (mb, _) = load_model_dir(model_a), load_model_dir(model_b)
    ids = encode_texts(tok, texts, tok.model_max_length)
    collate = DataCollator(pad_id=tok.pad_token_id)
    with paddle.no_grad():
        for i in range(0, len(ids), batch_size):
            batch = collate([{"input_ids": x} for x in ids[i:i + batch_size]])
            inputs = {k: paddle.to_tensor(v) for k, v in batch.items()}
            la, lb = ma(**inputs).logits.numpy(), mb(**inputs).logits.numpy()
            worst = max(worst, float(np.max(np.abs(la.astype("float64") - lb))))
    return worst


METRICS = ("dev_accuracy", "dev_macro_f1", "dev_loss", "test_accuracy", "test_macro_f1", "test_loss")


def run_check(processes: int = 2, per_device: int = 32, work_dir: Optional[str] = None,
              train_args: Sequence[str] = (), timeout: float = 600, env: Optional[Dict[str, str]] = None,
              resume: bool = False) -> dict:
    """The whole comparison (see the module doc) in `work_dir` (a new temporary folder when None). `resume`: also
    restart the P processes from the P-process run's first checkpoint and compare the last checkpoints' weights."""
    work_dir = work_dir or tempfile.mkdtemp(prefix="data_parallel_")
    raw = os.path.join(work_dir, "raw", "reviews.json.gz")  # made by the first of the P processes
    common = [TINY, "--input_file", raw, "--hidden_dropout_prob", "0", "--split_sizes", "300", "51", "49",
              "--disable_tqdm", "true", *train_args]

    def argv(name: str, batch: int) -> List[str]:
        return [*common, "--output_dir", os.path.join(work_dir, name, "output"),
                "--per_device_train_batch_size", str(batch)]

    many = run_training(processes, argv("many", per_device), work_dir, "many", timeout, env)
    one = run_training(1, argv("one", processes * per_device), work_dir, "one", timeout, env)
    one_rec, one_res = one["ranks"][0], one["ranks"][0]["results"]
    res = [r["results"] for r in many["ranks"]]
    out_one, out_many = one_res["output_dir"], res[0]["output_dir"]

    checkpoints = sorted((int(os.path.basename(p).split("-")[1]), os.path.basename(p))
                         for p in glob.glob(os.path.join(out_one, "checkpoint-*")))
    weights = {name: compare_weights(os.path.join(out_one, name), os.path.join(out_many, name))
               for _, name in checkpoints}
    weights["model"] = compare_weights(os.path.join(out_one, "model"), os.path.join(out_many, "model"))
    n_train, epochs = one_res["sizes"]["train"], one_res["epochs"]
    history = os.path.join(out_many, "resolved_args_history.jsonl")
    report = {
        "processes": processes,
        "per_device_train_batch_size": per_device,
        "global_batch_size": processes * per_device,
        "train_args": list(common),
        "epochs": epochs,
        "train_size": n_train,
        "steps": {
            "one_process_at_global_batch": one_res["global_step"],
            "processes_at_per_device_batch": [r["global_step"] for r in res],
            "one_process_at_per_device_batch": -(-n_train // per_device) * int(epochs),  # drop_last off
        },
        "batches": compare_batches(one_rec["batches"], [r["batches"] for r in many["ranks"]]),
        "weights": weights,
        "dev_logits_max_abs_diff": compare_logits(os.path.join(out_one, "model"), os.path.join(out_many, "model"),
                                                  one_res["data_dir"]),
        "metrics": {"one_process": {k: one_res.get(k) for k in METRICS},
                    "processes": [{k: r.get(k) for k in METRICS} for r in res]},
        "best_checkpoint": {"one_process": os.path.basename(one_res["best_checkpoint"] or ""),
                            "processes": [os.path.basename(r["best_checkpoint"] or "") for r in res]},
        "averaged_checkpoints": {"one_process": one_res.get("averaged_checkpoints"),
                                 "processes": [r.get("averaged_checkpoints") for r in res]},
        "train_samples_seen": {"one_process": one_res["train_samples_seen"],
                               "processes": [r["train_samples_seen"] for r in res]},
        "output_history_lines": sum(1 for _ in open(history)) if os.path.isfile(history) else 0,
        "dropout_seeds": dropout_seeds(os.path.join(out_many, checkpoints[0][1]), processes),
        "timing": {
            "one_process": {"wall_seconds": one["wall_seconds"], "train_seconds": one_res["train_seconds"],
                            "omp_num_threads": one_res["omp_num_threads"]},
            "processes": {"wall_seconds": many["wall_seconds"], "train_seconds": res[0]["train_seconds"],
                          "omp_num_threads": res[0]["omp_num_threads"]},
        },
        "environment": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "FASTFORMER_CPU_OPS")},  # None: unset
        "work_dir": work_dir,
    }
    if resume:
        report["resume"] = resume_check(processes, argv("resumed", per_device), out_many, checkpoints, work_dir,
                                        timeout, env)
    report["failures"] = failures(report)
    report["passed"] = not report["failures"]
    return report


def resume_check(processes: int, train_argv: Sequence[str], straight_output: str, checkpoints, work_dir: str,
                 timeout: float, env: Optional[Dict[str, str]]) -> dict:
    """Copy the first checkpoint of `straight_output` into a new output folder, let the P processes resume from it,
    and compare the last checkpoint with the uninterrupted run's."""
    first, last = checkpoints[0][1], checkpoints[-1][1]
    output = train_argv[train_argv.index("--output_dir") + 1]
    os.makedirs(output, exist_ok=True)
    shutil.copytree(os.path.join(straight_output, first), os.path.join(output, first))
    run = run_training(processes, train_argv, work_dir, "resumed", timeout, env)
    results = run["ranks"][0]["results"]
    return {
        "resumed_from": os.path.basename(results["resumed_from"] or ""),
        "global_step": results["global_step"],
        "last_checkpoint": last,
        "max_abs_diff_vs_uninterrupted": compare_weights(os.path.join(output, last),
                                                         os.path.join(straight_output, last))["max_abs_diff"],
        "wall_seconds": run["wall_seconds"],
    }


def failures(report: dict) -> List[str]:
    """The checks that do not hold, as lines."""
    bad = []
    steps = report["steps"]
    if set(steps["processes_at_per_device_batch"]) != {steps["one_process_at_global_batch"]}:
        bad.append(f"steps differ: {steps}")
    for epoch, e in report["batches"].items():
        if not (e["batches_are_slices_of_one_process"] and e["union_is_one_process_epoch"]
                and e["shared_indices_drawn_once_by_one_process"] == 0):
            bad.append(f"epoch {epoch}: the processes' batches are not the one process's cut into slices: {e}")
    for name, w in report["weights"].items():
        if not w["max_abs_diff"] <= TOLERANCE:
            bad.append(f"{name}: weights differ by {w['max_abs_diff']:.3g} ({w['worst_param']})")
    if not report["dev_logits_max_abs_diff"] <= TOLERANCE:
        bad.append(f"dev logits differ by {report['dev_logits_max_abs_diff']:.3g}")
    one = report["metrics"]["one_process"]
    for r, m in enumerate(report["metrics"]["processes"]):
        for k in METRICS:
            if one[k] is None or m[k] is None or (abs(one[k] - m[k]) > (TOLERANCE if k.endswith("loss") else 0)):
                bad.append(f"rank {r}: {k} {m[k]} != one process {one[k]}")
    if len(set(report["best_checkpoint"]["processes"] + [report["best_checkpoint"]["one_process"]])) != 1:
        bad.append(f"best checkpoints differ: {report['best_checkpoint']}")
    seen = report["train_samples_seen"]
    if set(seen["processes"]) != {seen["one_process"]}:
        bad.append(f"training samples counted differ: {seen}")
    resumed = report.get("resume")
    if resumed and not (resumed["max_abs_diff_vs_uninterrupted"] == 0.0
                        and resumed["global_step"] == steps["one_process_at_global_batch"]):
        bad.append(f"the resumed run differs from the uninterrupted one: {resumed}")
    if len(set(report["dropout_seeds"])) != report["processes"]:
        bad.append(f"the processes share dropout seeds: {report['dropout_seeds']}")
    if report["output_history_lines"] != 1:
        bad.append(f"resolved_args_history.jsonl has {report['output_history_lines']} lines, not 1: "
                   "more than one process wrote the output folder")
    return bad


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2:])
        return 0
    train_args: List[str] = []
    if "--" in argv:
        argv, train_args = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--per_device_train_batch_size", type=int, default=32)
    parser.add_argument("--work_dir", default=None, help="default: a new temporary folder (kept: outputs and logs)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per training run")
    parser.add_argument("--resume", action="store_true",
                        help="also resume the P processes from their first checkpoint and compare (a third run)")
    parser.add_argument("--output", default=None, help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    report = run_check(args.processes, args.per_device_train_batch_size, args.work_dir, train_args, args.timeout,
                       resume=args.resume)
    from benchmarks.common import result_header

    report = {**result_header("data_parallel", __file__, args, argv + (["--", *train_args] if train_args else [])),
              "cpu_flags": _cpu_flags(), **report}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        from fastformer.fileio import write_json

        write_json(args.output, report)
    return 0 if report["passed"] else 1


def _cpu_flags() -> List[str]:
    """The vector-instruction flags of /proc/cpuinfo (what MKL's code paths depend on)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(x for x in line.split(":", 1)[1].split() if x.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


if __name__ == "__main__":
    sys.exit(main())
