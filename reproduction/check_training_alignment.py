"""Training alignment: train.py (Paddle, PaddleNLP Trainer) against the official PyTorch math, same data, same recipe.

    python -m reproduction.check_training_alignment [config.json] [train.py flags ...] --name NAME
        [--seeds 1 2 3] [--align_steps 200] [--dropout_masks own|shared] [--ulp_control] [--dtype float32|float64]
        [--work_dir DIR] [--output FILE.json] [--plot FILE.png]

For each run, `train.py` trains first (in this process, with --logging_steps 1 so that every step's loss is logged,
and `InitialModelCallback` recording the weights it starts from), then `reproduction/train_torch_reference.py` trains
`reproduction.torch_reference.Model` from those weights on the same prepared data, tokenizer ids and batches (see its
doc). The config and flags are train.py's (the recipe in one place); --seed and --output_dir are set per run.
  1. dropout off (--hidden_dropout_prob 0), seed = the first of --seeds, as many epochs as it takes to reach
     --align_steps: both runs compute the same function on the same batches, so their per-step losses may differ
     only by float rounding. Reported: mean and max absolute difference over the first --align_steps steps.
     Target: mean <= 1e-4.
  2. the recipe as given (dropout on), once per seed: same initial weights and batches, different dropout masks
     (each framework's own RNG). Reported: dev (best epoch) and test macro-F1 / accuracy of each framework, mean and
     std over the seeds, and the paired per-seed differences. Target: the mean test macro-F1 within 0.5 points.
     With --dropout_masks shared, both frameworks use the same masks (`SharedDropoutMasks`: the kernel train.py
     trains with, seeded per step and call; each framework applies them with its own arithmetic): mask noise is
     gone, so the per-step losses are compared as in 1 (reported, first --align_steps steps and all) besides the
     metrics, and what is left to differ is dropout's placement and scaling.
  3. --ulp_control: the first seed's Paddle run once more, every initial weight moved one ulp up
     (`OneUlpNudge`), in DIR/<run>_ulp_control. Over a long training the per-step loss difference of any two runs
     that differ by rounding grows; this shows how fast for Paddle against itself, next to Paddle against PyTorch.
  4. --dtype float64: every run above in float64 in both frameworks (train.py inside `default_dtype`, the reference
     `.double()`; runs in DIR/float64_<run>). Not the recipe: a control. Rounding differences start ~1e9 times
     smaller, so training amplifies them for that much longer before they reach the size of the loss noise; if the
     frameworks differed by more than rounding-sized amounts, float64 would not bring them together (what remains is
     the official pooler's +1e-8, ~1e-9 on the logits: tests/reproduction/test_alignment.py). The logged Paddle losses are
     rounded to 8 decimals by PaddleNLP, so per-step differences below ~5e-9 read as 0 or as that rounding.
Runs live in DIR/<run>/ (default DIR: output/training_alignment/NAME): paddle/ (the train.py output folder),
paddle.json and pytorch.json (per-step losses, per-epoch dev metrics, test metrics). A finished half is not run
again, an interrupted train.py run resumes from its last checkpoint: rerunning the command completes the table.
Writes FILE.json (default benchmarks/results/training_alignment_NAME.json: every figure, the command, the machine,
the CPU settings) and FILE.png (both frameworks' loss curves and dev macro-F1 per epoch). Exit status 1 when a
target is missed, 2 on bad arguments.
"""

from __future__ import annotations

import fastformer.training  # noqa: F401  (first, before paddle loads: MKL settings and CPU threads)

import os
import sys


import argparse
import contextlib
import io
import json
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from paddlenlp.trainer import TrainerCallback

import train
from fastformer.fileio import atomic_write, write_json
from fastformer.splits import read_split
from fastformer.training.arguments import parse_args
from reproduction.train_torch_reference import (
    DTYPES,
    INITIAL_MODEL,
    InitialModelCallback,
    SharedDropoutMasks,
    check_same_recipe,
    check_supported,
    default_dtype,
    recipe,
    train_reference,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["TARGETS", "run_pair", "run_ulp_control", "OneUlpNudge", "paddle_record", "loss_alignment", "seed_summary",
           "plot", "main"]

# Report key -> the largest value accepted.
TARGETS = {
    "dropout_off_mean_abs_loss_diff": 1e-4,  # over the first --align_steps steps
    "mean_test_macro_f1_diff": 0.005,  # |mean Paddle - mean PyTorch| over the seeds: 0.5 points
}
# Every run: the loss of every step in the log, no VisualDL, no progress bars.
RUN_FLAGS = ["--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true"]
METRICS = ("dev_macro_f1", "dev_accuracy", "test_macro_f1", "test_accuracy")


def paddle_record(run_dir: str, results: Optional[dict] = None) -> dict:
    """The Paddle half of a run in the reference's JSON layout, from a train.py output folder (trainer_state.json:
    every step's loss with --logging_steps 1, dev metrics per epoch; test_results.json: the kept epoch, test)."""
    with open(os.path.join(run_dir, "trainer_state.json"), encoding="utf-8") as f:
        log = json.load(f)["log_history"]
    if results is None:
        with open(os.path.join(run_dir, "test_results.json"), encoding="utf-8") as f:
            results = json.load(f)
    losses = {e["step"]: e["loss"] for e in log if "loss" in e}
    if sorted(losses) != list(range(1, len(losses) + 1)) or len(losses) != results["global_step"]:
        raise ValueError(f"{run_dir}: the log lacks some steps' losses (was it trained with --logging_steps 1?)")
    epochs = [
        {"epoch": i + 1, "step": e["step"], **{k.replace("eval_", "dev_"): e[k] for k in e if k.startswith("eval_")
                                              and k[5:] in ("loss", "accuracy", "macro_f1")}}
        for i, e in enumerate(sorted((e for e in log if "eval_macro_f1" in e), key=lambda e: e["step"]))
    ]
    best = [e["epoch"] for e in epochs if e["step"] == results["dev_step"]]
    import paddle
    import paddlenlp

    return {
        "framework": "paddle",
        "versions": {"paddle": paddle.__version__, "paddlenlp": paddlenlp.__version__},
        "threads": int(results.get("omp_num_threads") or 0),
        "paddle_run_dir": run_dir,
        "sizes": results["sizes"],
        "step_losses": [losses[s] for s in range(1, len(losses) + 1)],
        "epochs": epochs,
        "best_epoch": best[0] if best else None,
        **{k: results[k] for k in ("dev_loss", "dev_accuracy", "dev_macro_f1", "test_loss", "test_accuracy",
                                   "test_macro_f1") if k in results},
        "train_seconds": results["train_seconds"],
    }


def _record_dtype(record: dict) -> str:
    return record.get("dtype", "float32")  # records written before --dtype are float32


def _paddle_half(argv: Sequence[str], run_dir: str, seed: int, shared_masks: bool, *callbacks,
                 dtype: str = "float32") -> dict:
    """train.py with `argv` (its output folder RUN_DIR/paddle) and `callbacks`, in `dtype`, unless RUN_DIR/paddle.json
    is there; the record of paddle.json."""
    path = os.path.join(run_dir, "paddle.json")
    if not os.path.isfile(path):
        print(f"== {run_dir}: Paddle (train.py, {dtype})", flush=True)
        masks = SharedDropoutMasks(seed) if shared_masks else None
        with default_dtype(dtype), masks.paddle_kernel_seeds() if masks else contextlib.nullcontext():
            results = train.main(list(argv), callbacks=[*callbacks, *([masks] if masks else [])])
        record = paddle_record(os.path.join(run_dir, "paddle"), results)
        record["dropout_masks"] = "shared" if masks else "own"
        record["dtype"] = dtype
        if masks:
            record["mask_draws"] = masks.draws_record()
        write_json(path, record)
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if _record_dtype(record) != dtype:
        raise ValueError(f"{path} was trained in {_record_dtype(record)}, not {dtype}: use another --work_dir")
    return record


class OneUlpNudge(TrainerCallback):
    """Moves every weight one ulp (of its dtype) up (`np.nextafter`) before the first step: a run that differs from
    another by nothing but a rounding-size change, to show how far such runs drift apart (the control of
    --ulp_control)."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            import paddle

            with paddle.no_grad():
                for param in model.parameters():
                    value = param.numpy()
                    param.set_value(np.nextafter(value, np.array(np.inf, dtype=value.dtype)))


def run_ulp_control(train_argv: Sequence[str], run_dir: str, seed: int, shared_masks: bool = False,
                    dtype: str = "float32") -> dict:
    """The Paddle run of `seed` again, its initial weights nudged by one ulp (`OneUlpNudge`); its record."""
    os.makedirs(run_dir, exist_ok=True)
    argv = [*train_argv, "--output_dir", os.path.join(run_dir, "paddle"), "--seed", str(seed), *RUN_FLAGS]
    return _paddle_half(argv, run_dir, seed, shared_masks, OneUlpNudge(), dtype=dtype)


def run_pair(train_argv: Sequence[str], run_dir: str, seed: int, dropout_off: bool = False,
             min_steps: int = 0, shared_masks: bool = False, dtype: str = "float32") -> Dict[str, dict]:
    """Train both frameworks for one seed (each half skipped when its JSON is there); {"paddle": .., "pytorch": ..}.
    `shared_masks`: both draw the same dropout masks (`SharedDropoutMasks` of `seed`); `dtype`: both train in it."""
    os.makedirs(run_dir, exist_ok=True)
    paddle_dir = os.path.join(run_dir, "paddle")
    argv = [*train_argv, "--output_dir", paddle_dir, "--seed", str(seed), *RUN_FLAGS]
    if dropout_off:
        argv += ["--hidden_dropout_prob", "0"]
    data_args, model_args, training_args = parse_args(argv)
    check_supported(data_args, model_args, training_args)
    ours = recipe(data_args, model_args, training_args)
    resolved = os.path.join(paddle_dir, "resolved_args.json")
    if os.path.isfile(resolved):  # a finished or interrupted run of this folder: it must be of this recipe
        with open(resolved, encoding="utf-8") as f:
            check_same_recipe(ours, json.load(f), f"{resolved}; use a new --work_dir for another recipe")
    records = {"paddle": _paddle_half(argv, run_dir, seed, shared_masks,
                                      InitialModelCallback(os.path.join(paddle_dir, INITIAL_MODEL),
                                                           data_args.max_length), dtype=dtype)}
    if len(records["paddle"]["step_losses"]) < min_steps:
        raise ValueError(f"the run has {len(records['paddle']['step_losses'])} training steps, fewer than "
                         f"--align_steps {min_steps}: raise --num_train_epochs or lower --align_steps")
    path = os.path.join(run_dir, "pytorch.json")
    if not os.path.isfile(path):
        print(f"== {run_dir}: PyTorch reference", flush=True)
        write_json(path, train_reference(data_args, model_args, training_args, paddle_dir,
                                         masks=SharedDropoutMasks(seed) if shared_masks else None, dtype=dtype))
    with open(path, encoding="utf-8") as f:
        records["pytorch"] = json.load(f)
    if records["pytorch"]["recipe"] != ours or _record_dtype(records["pytorch"]) != dtype:
        raise ValueError(f"{path} was trained with another recipe or dtype: use a new --work_dir")
    if shared_masks:
        draws = [records[fw].get("mask_draws") for fw in ("paddle", "pytorch")]
        common = set(draws[0] or {}) & set(draws[1] or {})
        if not common or any(draws[0][k] != draws[1][k] for k in common):
            raise ValueError(f"{run_dir}: the two frameworks did not draw the same dropout masks (masks drawn per "
                             "step differ: a dropout layer outside the shared kernel?)")
    return records


def loss_alignment(paddle_losses: Sequence[float], torch_losses: Sequence[float], steps: int) -> dict:
    """Absolute per-step loss differences over the first `steps` steps (mean, max, median, per 50-step block)."""
    if len(paddle_losses) != len(torch_losses):
        raise ValueError(f"Paddle trained {len(paddle_losses)} steps, PyTorch {len(torch_losses)}")
    diff = np.abs(np.asarray(paddle_losses[:steps], np.float64) - np.asarray(torch_losses[:steps], np.float64))
    return {
        "steps": int(len(diff)),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
        "max_abs_diff_step": int(diff.argmax()) + 1,
        "median_abs_diff": float(np.median(diff)),
        "first_step_abs_diff": float(diff[0]),
        "mean_abs_diff_per_50_steps": [float(diff[i:i + 50].mean()) for i in range(0, len(diff), 50)],
        "mean_loss": float(np.mean(paddle_losses[:steps])),
    }


def _mean_std(values: Sequence[float]) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": int(len(values))}


def seed_summary(pairs: Dict[int, Dict[str, dict]]) -> dict:
    """Per framework and metric: mean and std (ddof 1) over the seeds; the paired Paddle - PyTorch differences."""
    out = {fw: {m: _mean_std([p[fw][m] for p in pairs.values()]) for m in METRICS} for fw in ("paddle", "pytorch")}
    out["paired_diff"] = {m: _mean_std([p["paddle"][m] - p["pytorch"][m] for p in pairs.values()]) for m in METRICS}
    return out


def _moving_average(x: Sequence[float], k: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    k = max(1, min(k, len(x)))
    return np.convolve(x, np.ones(k) / k, mode="valid")


def plot(path: str, title: str, aligned: Optional[Dict[str, dict]], pairs: Dict[int, Dict[str, dict]],
         align_steps: int, masks: str = "own") -> None:
    """One PNG: dropout-off loss curves with their difference, dropout-on loss curves, dev macro-F1 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    colors = {"paddle": "tab:blue", "pytorch": "tab:orange"}
    names = {"paddle": "Paddle (train.py)", "pytorch": "PyTorch reference"}
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    first = next(iter(pairs), None)
    ax = axes[0, 0]
    if aligned:
        for fw, style in (("paddle", "-"), ("pytorch", "--")):
            losses = aligned[fw]["step_losses"]
            ax.plot(range(1, len(losses) + 1), losses, style, color=colors[fw], lw=1, label=names[fw])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no dropout-off run (--align_steps 0)", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="dropout off: training loss per step", xlabel="step", ylabel="loss")
    ax = axes[0, 1]
    if aligned:
        diff = np.abs(np.subtract(aligned["paddle"]["step_losses"], aligned["pytorch"]["step_losses"]))
        ax.semilogy(range(1, len(diff) + 1), np.maximum(diff, 1e-10), color="tab:red", lw=0.8)
        ax.axhline(TARGETS["dropout_off_mean_abs_loss_diff"], color="grey", ls=":", lw=1,
                   label="target for the mean over the first %d steps" % align_steps)
        ax.axvline(align_steps, color="grey", lw=0.8, ls="--")
        ax.legend(fontsize=8)
        ax.set(title="dropout off: |Paddle loss - PyTorch loss| per step (0 drawn at 1e-10)")
    elif masks == "shared" and pairs:  # no dropout-off run: the same-mask runs' differences, one line per seed
        for seed, pair in pairs.items():
            diff = np.abs(np.subtract(pair["paddle"]["step_losses"], pair["pytorch"]["step_losses"]))
            ax.semilogy(range(1, len(diff) + 1), np.maximum(diff, 1e-10), lw=0.6, label=f"seed {seed}")
        ax.legend(fontsize=8)
        ax.set(title="dropout on, shared masks: |Paddle - PyTorch loss| per step (0 at 1e-10)")
    else:
        ax.set(title="dropout off: |Paddle loss - PyTorch loss| per step")
    ax.set(xlabel="step", ylabel="absolute difference")
    ax = axes[1, 0]
    for seed, pair in pairs.items():
        for fw, style in (("paddle", "-"), ("pytorch", "--")):
            losses = pair[fw]["step_losses"]
            k = max(1, len(losses) // 40)
            smooth = _moving_average(losses, k)
            ax.plot(np.arange(len(smooth)) + k, smooth, style, color=colors[fw], lw=1, alpha=0.8,
                    label=names[fw] if seed == first else None)
    ax.set(title=f"dropout on ({masks} masks): training loss (moving average), seeds {', '.join(map(str, pairs))}",
           xlabel="step", ylabel="loss")
    ax = axes[1, 1]
    for seed, pair in pairs.items():
        for fw, marker in (("paddle", "o-"), ("pytorch", "s--")):
            epochs = pair[fw]["epochs"]
            ax.plot([e["epoch"] for e in epochs], [100 * e["dev_macro_f1"] for e in epochs], marker,
                    color=colors[fw], alpha=0.8, label=names[fw] if seed == first else None)
    ax.set(title=f"dropout on ({masks} masks): dev macro-F1 per epoch (one line per seed)", xlabel="epoch",
           ylabel="macro-F1 (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if pairs:
        axes[1, 0].legend(fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def cpu_settings() -> dict:
    """The CPU settings the figures depend on: thread counts, MKL code path, the compiled kernels, ISA flags."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    env = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_DEBUG_CPU_TYPE", "FASTFORMER_CPU_OPS")
    return {**{k: os.environ.get(k) for k in env},
            "isa_flags": sorted(flags & {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"})}


def _fmt(stat: dict, scale: float = 100.0) -> str:
    return f"{scale * stat['mean']:.2f} ± {scale * stat['std']:.2f}"


def report_lines(result: dict) -> List[str]:
    lines = []
    aligned = result.get("dropout_off")
    if aligned:
        a = aligned["loss"]
        lines += [
            f"dropout off, seed {aligned['seed']}, first {a['steps']} steps: per-step |loss difference| mean "
            f"{a['mean_abs_diff']:.3g}, max {a['max_abs_diff']:.3g} (step {a['max_abs_diff_step']}), first step "
            f"{a['first_step_abs_diff']:.3g}; mean per 50 steps " + ", ".join(f"{x:.2g}" for x in
                                                                            a["mean_abs_diff_per_50_steps"]),
            f"  all {aligned['loss_all_steps']['steps']} steps: mean {aligned['loss_all_steps']['mean_abs_diff']:.3g},"
            f" max {aligned['loss_all_steps']['max_abs_diff']:.3g}; test macro-F1 Paddle "
            f"{100 * aligned['paddle']['test_macro_f1']:.2f}, PyTorch {100 * aligned['pytorch']['test_macro_f1']:.2f}",
        ]
    for row in result.get("seeds", []):
        if "loss" in row:
            lines.append(f"dropout on, shared masks, seed {row['seed']}: per-step |loss difference| over the first "
                         f"{row['loss']['steps']} steps mean {row['loss']['mean_abs_diff']:.3g}, max "
                         f"{row['loss']['max_abs_diff']:.3g}; all {row['loss_all_steps']['steps']} steps mean "
                         f"{row['loss_all_steps']['mean_abs_diff']:.3g}, "
                         f"max {row['loss_all_steps']['max_abs_diff']:.3g}")
    control = result.get("ulp_control")
    if control:
        for key, label in (("paddle_vs_pytorch", "Paddle vs PyTorch"),
                           ("paddle_vs_nudged_paddle", "Paddle vs Paddle with its initial weights 1 ulp up")):
            lines.append(f"seed {control['seed']}, {label}: mean |loss difference| per 50 steps "
                         + " ".join(f"{x:.1e}" for x in control[key]["mean_abs_diff_per_50_steps"]))
        nudged = control["nudged_paddle"]
        lines.append(f"  the nudged Paddle run: best epoch {nudged['best_epoch']}, dev macro-F1 "
                     f"{100 * nudged['dev_macro_f1']:.2f}, test macro-F1 {100 * nudged['test_macro_f1']:.2f}")
    if result.get("seeds"):
        lines += ["", "| seed | framework | best epoch | dev macro-F1 | dev acc | test macro-F1 | test acc | train s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in result["seeds"]:
            for fw in ("paddle", "pytorch"):
                r = row[fw]
                lines.append(f"| {row['seed']} | {fw} | {r['best_epoch']} | {100 * r['dev_macro_f1']:.2f} | "
                             f"{100 * r['dev_accuracy']:.2f} | {100 * r['test_macro_f1']:.2f} | "
                             f"{100 * r['test_accuracy']:.2f} | {r['train_seconds']:.0f} |")
        s = result["summary"]
        lines += ["", "| over seeds (mean ± std) | dev macro-F1 | dev acc | test macro-F1 | test acc |",
                  "| --- | --- | --- | --- | --- |"]
        for key, label in (("paddle", "Paddle"), ("pytorch", "PyTorch"), ("paired_diff", "Paddle - PyTorch, paired")):
            lines.append(f"| {label} | " + " | ".join(_fmt(s[key][m]) for m in METRICS) + " |")
    lines += [""] + [f"{k}: {v['value']:.3g} (target <= {v['target']:g}) {'ok' if v['passed'] else 'MISSED'}"
                     for k, v in result["targets"].items()]
    return lines


def _parse(argv: Optional[Sequence[str]]):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False,
        usage="%(prog)s [config.json] [train.py flags ...] --name NAME [--seeds S ...] [--align_steps N] ...",
    )
    parser.add_argument("--name", required=True, help="results name: benchmarks/results/training_alignment_NAME.json")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3],
                        help="seeds of the dropout-on runs (none: skip them); the first also seeds the dropout-off run")
    parser.add_argument("--align_steps", type=int, default=200,
                        help="steps compared in the dropout-off run (0: skip that run)")
    parser.add_argument("--dropout_masks", choices=("own", "shared"), default="own",
                        help="dropout-on runs: each framework draws its own masks (own), or both the same (shared; "
                        "runs in DIR/shared_masks_seedS)")
    parser.add_argument("--ulp_control", action="store_true",
                        help="also train the first seed's Paddle run again with every initial weight moved one ulp: "
                        "how far two runs drift apart from a rounding-size difference, next to Paddle vs PyTorch")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="train both frameworks in this precision; float64 is a rounding control, not the recipe "
                        "(runs in DIR/float64_<run>)")
    parser.add_argument("--work_dir", default=None, help="runs folder (default output/training_alignment/NAME)")
    parser.add_argument("--output", default=None, help="results JSON (default benchmarks/results/training_alignment_NAME.json)")
    parser.add_argument("--plot", default=None, help="PNG (default: the results JSON with .png)")
    return parser.parse_known_args(None if argv is None else list(argv))


def run(args, train_argv: List[str]):
    if not args.seeds and args.align_steps <= 0:
        raise ValueError("nothing to run: give --seeds and/or --align_steps > 0")
    if any(flag in train_argv for flag in ("--seed", "--output_dir")):
        raise ValueError("--seed and --output_dir are set per run by this tool: use --seeds and --work_dir")
    work_dir = args.work_dir or os.path.join("output", "training_alignment", args.name)
    # every run reads one prepared dataset (prepared by the first run, reused by the others)
    data_args, model_args, training_args = parse_args([*train_argv, "--output_dir", work_dir])
    check_supported(data_args, model_args, training_args)  # before any training
    if not data_args.data_dir:
        train_argv = [*train_argv, "--data_dir", os.path.join(work_dir, "data")]
        data_args, model_args, training_args = parse_args([*train_argv, "--output_dir", work_dir])
    start = time.perf_counter()
    result: dict = {}
    first_seed = args.seeds[0] if args.seeds else 1
    prefix = "" if args.dtype == "float32" else f"{args.dtype}_"  # run folders of float32 keep their old names
    if args.align_steps > 0:
        # the dropout-off run stops after the first epoch that reaches align_steps
        data_dir = train.prepare_data(data_args, work_dir, show_progress=False)
        n, bs = len(read_split(os.path.join(data_dir, "train.jsonl"))[1]), training_args.per_device_train_batch_size
        per_epoch = n // bs if training_args.dataloader_drop_last else -(-n // bs)
        if per_epoch * int(training_args.num_train_epochs) < args.align_steps:
            raise ValueError(f"the recipe trains {per_epoch} steps x {int(training_args.num_train_epochs)} epochs, "
                             f"fewer than --align_steps {args.align_steps}: raise --num_train_epochs or lower it")
        epochs = -(-args.align_steps // per_epoch)
        pair = run_pair([*train_argv, "--num_train_epochs", str(epochs)],
                        os.path.join(work_dir, f"{prefix}dropout_off_seed{first_seed}"), first_seed, dropout_off=True,
                        min_steps=args.align_steps, dtype=args.dtype)
        result["dropout_off"] = {
            "seed": first_seed,
            "epochs": epochs,
            "loss": loss_alignment(pair["paddle"]["step_losses"], pair["pytorch"]["step_losses"], args.align_steps),
            "loss_all_steps": loss_alignment(pair["paddle"]["step_losses"], pair["pytorch"]["step_losses"],
                                             len(pair["paddle"]["step_losses"])),
            **pair,
        }
    shared = args.dropout_masks == "shared"
    run_dirs = {seed: os.path.join(work_dir, f"{prefix}{'shared_masks_' if shared else ''}seed{seed}")
                for seed in args.seeds}
    pairs = {seed: run_pair(train_argv, run_dirs[seed], seed, shared_masks=shared, dtype=args.dtype)
             for seed in args.seeds}
    if pairs:
        result["dropout_masks"] = args.dropout_masks
        result["seeds"] = [{"seed": seed, **pair} for seed, pair in pairs.items()]
        result["summary"] = seed_summary(pairs)
        if shared:  # same masks: the step losses are comparable as with dropout off
            for row in result["seeds"]:
                losses = row["paddle"]["step_losses"], row["pytorch"]["step_losses"]
                row["loss"] = loss_alignment(*losses, args.align_steps or len(losses[0]))
                row["loss_all_steps"] = loss_alignment(*losses, len(losses[0]))
        if args.ulp_control:
            seed = args.seeds[0]
            nudged = run_ulp_control(train_argv, run_dirs[seed] + "_ulp_control", seed, shared_masks=shared,
                                     dtype=args.dtype)
            pair = pairs[seed]
            steps = len(pair["paddle"]["step_losses"])
            result["ulp_control"] = {
                "seed": seed,
                "paddle_vs_pytorch": loss_alignment(pair["paddle"]["step_losses"], pair["pytorch"]["step_losses"],
                                                    steps),
                "paddle_vs_nudged_paddle": loss_alignment(pair["paddle"]["step_losses"], nudged["step_losses"], steps),
                "nudged_paddle": nudged,
            }
    targets = {}
    if "dropout_off" in result:
        targets["dropout_off_mean_abs_loss_diff"] = result["dropout_off"]["loss"]["mean_abs_diff"]
    if pairs:
        s = result["summary"]
        targets["mean_test_macro_f1_diff"] = abs(s["paddle"]["test_macro_f1"]["mean"]
                                                 - s["pytorch"]["test_macro_f1"]["mean"])
    result["targets"] = {k: {"value": v, "target": TARGETS[k], "passed": bool(v <= TARGETS[k])}
                         for k, v in targets.items()}
    result["passed"] = all(t["passed"] for t in result["targets"].values())
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result, work_dir, pairs


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, train_argv = _parse(argv)
    command = "python -m reproduction.check_training_alignment " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        result, work_dir, pairs = run(args, train_argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from reproduction.machine import machine_info, versions

    output = args.output or os.path.join(ROOT, "benchmarks", "results", f"training_alignment_{args.name}.json")
    png = args.plot or os.path.splitext(output)[0] + ".png"
    payload = {
        "benchmark": "training_alignment",
        "name": args.name,
        "command": command,
        "train_args": train_argv,
        "settings": {"seeds": args.seeds, "align_steps": args.align_steps, "work_dir": work_dir,
                     "dropout_masks": args.dropout_masks, "dtype": args.dtype},
        "machine": machine_info(),
        "cpu_settings": cpu_settings(),
        "versions": versions("paddle", "paddlenlp", "torch", "numpy"),
        "plot": os.path.relpath(png, ROOT),
        **result,
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    write_json(output, payload)
    aligned = result.get("dropout_off")
    plot(png, f"Training alignment, {args.name}: train.py (Paddle) vs the official math (PyTorch), {args.dtype}",
         {k: aligned[k] for k in ("paddle", "pytorch")} if aligned else None, pairs, args.align_steps,
         args.dropout_masks)
    if args.dtype != "float32":
        print(f"both frameworks trained in {args.dtype} (a rounding control, not the recipe's float32)")
    print("\n".join(report_lines(result)))
    print(f"wrote {output} and {png}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
