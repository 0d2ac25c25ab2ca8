"""Train the official-math PyTorch Fastformer (`reproduction.torch_reference.Model`) the way `train.py` trains the port.

    python -m reproduction.train_torch_reference [config.json] [train.py flags ...] --paddle_run_dir DIR [--output_json FILE]
        [--dtype float32|float64]

The other half of `reproduction/check_training_alignment.py`, which makes DIR and runs both. DIR is a `train.py` output
folder holding `initial_model/`, the Paddle model before its first step and its tokenizer (written by
`InitialModelCallback`), `resolved_args.json` and the prepared dataset. Config and flags are those of `train.py`
(the recipe is stated in one place); the recipe this script uses must equal the Paddle run's (checked against
DIR/resolved_args.json), and options the reference does not implement are refused, naming them.

The same as `train.py`, by construction:
  * data: the Paddle run's prepared train/dev/test.jsonl and its tokenizer (identical ids), truncated to max_length;
  * initial weights: the Paddle run's, converted (`fastformer.convert.to_torch_state_dict`);
  * batches: `EpochBatchSampler` with the Trainer's arguments (seed, sampling, group_by_length, drop_last) and
    `DataCollator` (dynamic padding to a multiple of 8), epoch by epoch, so every step sees the same batch;
  * optimizer: `torch.optim.Adam` at learning_rate, adam_beta1/2, adam_epsilon, constant rate, no clipping: what
    PaddleNLP's AdamW is with weight_decay 0 (its update lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps*sqrt(1-b2^t))
    is torch's lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps) rewritten);
  * loss: the official model's mean cross-entropy (class-weighted with --sampling weighted_loss, as the Trainer);
  * dropout hidden_dropout_prob in the official places (embeddings, both sub-layer outputs), torch's own RNG seeded
    with --seed (so the masks differ from Paddle's: with dropout the two runs agree in distribution only); or, with
    `SharedDropoutMasks` (check_training_alignment.py --dropout_masks shared), the very masks of the Paddle run;
  * after every epoch: dev accuracy / macro-F1 (`classification_metrics`) on length-sorted dev batches of
    per_device_eval_batch_size; the best epoch by metric_for_best_model (the first on a tie, as PaddleNLP) is kept
    and the test split evaluated with it;
  * precision: float32, or float64 (--dtype float64) when the Paddle run trained in float64 (`default_dtype`, used by
    check_training_alignment.py --dtype float64): a control that makes rounding ~1e9 times smaller.

Writes FILE (default DIR/torch_reference.json): per-step training loss, per-epoch dev metrics, the best epoch's dev
and test metrics, the recipe and the training time.
"""

from __future__ import annotations

import fastformer.training  # noqa: F401  (first, before paddle loads: MKL settings and CPU threads)

import os
import sys


import argparse
import contextlib
import copy
import dataclasses
import json
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from paddlenlp.trainer import TrainerCallback

from fastformer.splits import read_split
from fastformer import encoding, model_folder
from fastformer.fileio import write_json
from fastformer.metrics import class_weights, classification_metrics
from fastformer.training.arguments import DataArguments, parse_args, resolved_args
from fastformer.training.dataset import EncodedDataset
from fastformer.training.sampler import EpochBatchSampler

__all__ = [
    "INITIAL_MODEL",
    "DTYPES",
    "default_dtype",
    "InitialModelCallback",
    "SharedDropoutMasks",
    "check_supported",
    "recipe",
    "check_same_recipe",
    "train_sampler",
    "train_reference",
    "main",
]

INITIAL_MODEL = "initial_model"  # in a Paddle run folder: the model before its first step, with its tokenizer
OUTPUT_JSON = "torch_reference.json"
DTYPES = ("float32", "float64")  # float32: the recipe; float64: the rounding control of the alignment check

# Arguments the reference uses, and the values it accepts where it implements only some ("the core recipe").
# Anything else must keep its default (below), so an option added to train.py later is refused until it is
# implemented here.
REQUIRED_VALUES = {
    "pooler_type": ("attention",),  # the official Model has the attention pooler only
    "use_value_projection": (False,),  # official: value = query
    "share_attention_layers": (False,),
    "weight_decay": (0.0,),  # Adam; AdamW's decoupled decay is not implemented here
    "lr_scheduler_type": ("constant",),
    "warmup_steps": (0,),
    "warmup_ratio": (0.0,),
    "max_grad_norm": (0.0,),  # no gradient clipping (PaddleNLP's default is 1.0: set 0)
    "evaluation_strategy": ("epoch",),  # dev metrics per epoch, best epoch kept
    "load_best_model_at_end": (True,),
    "gradient_accumulation_steps": (1,),
    "max_steps": (-1,),
    "optim": ("adamw",),
    "fp16": (False,),
    "bf16": (False,),
}
USED = {
    "max_length", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_dropout_prob", "max_position_embeddings", "sampling", "group_by_length", "num_train_epochs",
    "per_device_train_batch_size", "per_device_eval_batch_size", "learning_rate", "adam_beta1", "adam_beta2",
    "adam_epsilon", "seed", "dataloader_drop_last", "metric_for_best_model", "greater_is_better",
} | set(REQUIRED_VALUES)
# Data preparation and vocabulary: the reference reads the Paddle run's prepared dataset and tokenizer.
FROM_PADDLE_RUN = {f.name for f in dataclasses.fields(DataArguments)} - {"max_length"}
# No effect on the arithmetic of training (output, logging, saving, bookkeeping PaddleNLP derives from them).
NO_EFFECT = {
    "output_dir", "overwrite_output_dir", "logging_dir", "logging_strategy", "logging_first_step", "logging_steps",
    "save_strategy", "save_steps", "save_total_limit", "report_to", "disable_tqdm", "run_name", "do_train",
    "do_eval", "do_predict", "resume_from_checkpoint", "dataloader_num_workers", "log_level", "log_level_replica",
    "eval_steps",
}


def _plain(value):
    value = getattr(value, "value", value)  # PaddleNLP's enums (SchedulerType, IntervalStrategy, OptimizerNames)
    return list(value) if isinstance(value, tuple) else value


def _fields(*dataclass_objects) -> Dict[str, object]:
    return {f.name: _plain(getattr(obj, f.name)) for obj in dataclass_objects for f in dataclasses.fields(obj)}


def check_supported(data_args, model_args, training_args) -> None:
    """ValueError naming every argument the PyTorch reference does not implement (value or option)."""
    given = _fields(data_args, model_args, training_args)
    defaults = _fields(*parse_args(["--output_dir", training_args.output_dir]))
    problems = [
        f"--{name} {given[name]!r} (the reference implements {' or '.join(repr(v) for v in allowed)})"
        for name, allowed in REQUIRED_VALUES.items() if given[name] not in allowed
    ]
    metric = (given["metric_for_best_model"] or "loss").replace("eval_", "")
    if metric not in ("loss", "accuracy", "macro_f1"):
        problems.append(f"--metric_for_best_model {given['metric_for_best_model']!r} (loss, accuracy or macro_f1)")
    epochs = given["num_train_epochs"]
    if float(epochs) != int(epochs) or epochs < 1:
        problems.append(f"--num_train_epochs {epochs!r} (whole epochs only)")
    known = USED | FROM_PADDLE_RUN | NO_EFFECT
    problems += [
        f"--{name} {given[name]!r} (not implemented by the reference; default {defaults[name]!r})"
        for name in given if name not in known and given[name] != defaults[name]
    ]
    if problems:
        raise ValueError("the PyTorch reference does not implement: " + "; ".join(problems))


def recipe(data_args, model_args, training_args) -> Dict[str, object]:
    """The arguments the reference trains with (the core recipe), as plain values."""
    given = _fields(data_args, model_args, training_args)
    return {name: given[name] for name in sorted(USED)}


def check_same_recipe(ours: Dict[str, object], paddle_resolved: dict, source: str) -> None:
    """ValueError listing every recipe argument that differs from the Paddle run's resolved arguments."""
    theirs = {k: _plain(v) for part in paddle_resolved.values() for k, v in part.items()}
    differ = [f"--{k}: here {v!r}, Paddle run {theirs.get(k)!r}" for k, v in ours.items() if theirs.get(k) != v]
    if differ:
        raise ValueError(f"the recipe differs from the Paddle run ({source}): " + "; ".join(differ))


@contextlib.contextmanager
def default_dtype(dtype: str):
    """Within the block Paddle creates (and `model_folder.load_model_dir` loads) parameters in `dtype`: train.py trains in
    float64 when run inside it (the model and Adam's state follow its parameters)."""
    import paddle

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: one of {', '.join(DTYPES)}")
    before = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        yield
    finally:
        paddle.set_default_dtype(before)


class InitialModelCallback(TrainerCallback):
    """Writes the model as it is when training begins (before the first step) and its tokenizer into `path`, as a
    model folder (`model_folder.save_model_dir`): the initial weights the reference starts from. Only on a fresh start
    (global step 0); a folder already there must hold the same weights (a rerun of the same seed), else ValueError."""

    def __init__(self, path: str, max_length: int):
        self.path = path
        self.max_length = max_length

    def on_train_begin(self, args, state, control, model=None, tokenizer=None, **kwargs):
        if state.global_step != 0:  # resumed: the initial model was written by the interrupted run
            if not os.path.isdir(self.path):
                raise FileNotFoundError(f"{self.path!r} is missing: the run resumed, its initial weights are lost")
            return
        if os.path.isdir(self.path):
            saved, _ = model_folder.load_model_dir(self.path)
            ours = {k: v.numpy() for k, v in model.state_dict().items()}
            theirs = {k: v.numpy() for k, v in saved.state_dict().items()}
            if ours.keys() != theirs.keys() or not all(np.array_equal(ours[k], theirs[k]) for k in ours):
                raise ValueError(f"{self.path!r} holds other initial weights than this run's (another recipe or "
                                 "seed in the same folder): use a new work folder")
            return
        tmp = f"{self.path}.tmp"
        model_folder.save_model_dir(model, tokenizer, tmp, max_length=self.max_length)
        os.replace(tmp, self.path)  # complete or absent


class SharedDropoutMasks(TrainerCallback):
    """The same dropout masks in both frameworks: the k-th dropout of training step t (0-based, counted from the
    first step, so a resumed run draws what an uninterrupted one would) takes its mask from the compiled kernel that
    train.py trains with (`fastformer.cpu_ops`, counter based) at seed hash(seed, t, k), instead of a seed from
    Paddle's generator. The Paddle run keeps its own dropout arithmetic (kernel forward and backward) with these seeds
    (`paddle_kernel_seeds()`, and this object as a Trainer callback to follow the step); the PyTorch reference draws
    each mask with the kernel on a tensor of ones and applies it with torch (`torch_modules`: x * mask * 1/(1-p)).
    Dropout placement and scaling are then compared on the same random numbers, without mask noise. `draws` counts
    the masks drawn per step, to check that both drew alike. In float64 (which the kernel does not take) the Paddle
    run draws its masks as the reference does and applies them with Paddle ops (`paddle_kernel_seeds`)."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.step = 0
        self.calls = 0
        self.draws: Dict[int, int] = {}

    def set_step(self, step: int) -> None:
        self.step, self.calls = int(step), 0

    def next_seed(self) -> int:
        seed = np.random.SeedSequence([self.seed, self.step, self.calls]).generate_state(1)[0] & 0x7FFFFFFF
        self.calls += 1
        self.draws[self.step] = self.calls
        return int(seed)

    def draws_record(self) -> Dict[str, int]:
        """`draws` as the results files hold it (step as a string key, in step order)."""
        return {str(k): v for k, v in sorted(self.draws.items())}

    def on_step_begin(self, args, state, control, **kwargs):
        self.set_step(state.global_step)

    @staticmethod
    def _ops():
        from fastformer import cpu_ops

        ops = cpu_ops.load_ops()
        if ops is None:
            raise ValueError("--dropout_masks shared needs the compiled CPU kernels (fastformer.cpu_ops), which are "
                             "not available here (FASTFORMER_CPU_OPS=0, or no C++ compiler)")
        return ops

    def keep_mask(self, shape: Sequence[int], p: float):
        """The next mask (uint8 Paddle tensor of `shape`, 1 = kept), drawn by the kernel on a float32 tensor of ones."""
        import paddle

        return self._ops().fastformer_dropout(paddle.ones(list(shape), "float32"), self.next_seed(), float(p))[1]

    @contextlib.contextmanager
    def paddle_kernel_seeds(self):
        """Within the block, train.py's dropout kernel takes its seeds from here; dropout of float64 tensors (Paddle's
        own kernel and generator otherwise) applies `keep_mask` with Paddle ops."""
        import paddle

        from fastformer import cpu_ops, modeling

        ops, original, original_forward, masks = self._ops(), cpu_ops.dropout, modeling.Dropout.forward, self

        def dropout(x, p):
            return tuple(ops.fastformer_dropout(x.contiguous(), self.next_seed(), float(p)))

        def forward(layer, x):
            if not layer.training or layer.p == 0 or x.dtype == paddle.float32:
                return original_forward(layer, x)
            return x * (masks.keep_mask(x.shape, layer.p).astype(x.dtype) * (1.0 / (1.0 - layer.p)))

        cpu_ops.dropout, modeling.Dropout.forward = dropout, forward
        try:
            yield self
        finally:
            cpu_ops.dropout, modeling.Dropout.forward = original, original_forward

    def torch_modules(self, model) -> int:
        """Replace every `torch.nn.Dropout` of `model` by one applying this object's masks; the number replaced."""
        import torch

        masks = self

        class SharedMaskDropout(torch.nn.Module):
            def __init__(self, p: float):
                super().__init__()
                self.p = p

            def forward(self, x):
                if not self.training or self.p == 0:
                    return x
                keep = masks.keep_mask(x.shape, self.p)
                return x * (torch.from_numpy(keep.numpy()).to(x.dtype) * (1.0 / (1.0 - self.p)))

        replaced = 0
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, torch.nn.Dropout):
                    setattr(module, name, SharedMaskDropout(float(child.p)))
                    replaced += 1
        return replaced


# ------------------------------------------------------------------------------------------------- reference
def _paddle_run(paddle_run_dir: str) -> Tuple[dict, str]:
    """(resolved arguments, prepared data folder) of a train.py output folder."""
    path = os.path.join(paddle_run_dir, "resolved_args.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} not found: --paddle_run_dir must be a train.py output folder")
    with open(path, encoding="utf-8") as f:
        resolved = json.load(f)
    data_dir = resolved["data"].get("data_dir") or os.path.join(paddle_run_dir, "data")
    if not os.path.isdir(os.path.join(paddle_run_dir, INITIAL_MODEL)):
        raise FileNotFoundError(
            f"{os.path.join(paddle_run_dir, INITIAL_MODEL)!r} not found: the Paddle run's initial weights are written "
            "by reproduction/check_training_alignment.py (InitialModelCallback); run the comparison with it"
        )
    return resolved, data_dir


def train_sampler(dataset: EncodedDataset, training_args) -> EpochBatchSampler:
    """The training batch sampler of `FastformerTrainer._get_train_sampler` (one process), for `dataset`."""
    return EpochBatchSampler(
        dataset.labels,
        batch_size=training_args.per_device_train_batch_size,
        seed=training_args.seed,
        balanced=training_args.sampling == "balanced",
        drop_last=training_args.dataloader_drop_last,
        lengths=dataset.lengths() if training_args.group_by_length else None,
    )


def _batches(dataset: EncodedDataset, batches: Sequence[Sequence[int]], collator) -> List[dict]:
    return [collator([dataset[i] for i in batch]) for batch in batches]


def _evaluate(model, batches: List[dict]) -> Dict[str, float]:
    """Mean cross-entropy, accuracy and macro-F1 over padded batches (eval mode, no gradient)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    logits, labels, loss_sum = [], [], 0.0
    with torch.no_grad():
        for batch in batches:
            ids, y = torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["labels"])
            _, score = model(ids, y)
            loss_sum += float(F.cross_entropy(score, y, reduction="sum"))
            logits.append(score.numpy())
            labels.append(batch["labels"])
    model.train()
    labels = np.concatenate(labels)
    return {"loss": loss_sum / len(labels), **classification_metrics(labels, np.concatenate(logits).argmax(-1))}


def _saved_dtype(model_dir: str) -> str:
    """The dtype of the weights in a model folder's safetensors file (read from its header)."""
    from safetensors import safe_open

    with safe_open(os.path.join(model_dir, model_folder.model_weights_file(model_dir)), framework="np") as f:
        code = f.get_slice(next(iter(f.keys()))).get_dtype()  # "F32", "F64", ...
    return {"F32": "float32", "F64": "float64"}.get(code, code)


def train_reference(data_args, model_args, training_args, paddle_run_dir: str, log=print,
                    masks: Optional[SharedDropoutMasks] = None, dtype: str = "float32") -> dict:
    """Train `torch_reference.Model` from the Paddle run's initial weights on its data; see module doc. `masks`:
    dropout with the Paddle run's masks (a fresh `SharedDropoutMasks` of the Paddle run's seed) instead of torch's.
    `dtype`: float64 for a Paddle run trained in float64 (its initial weights are float64)."""
    import torch
    import torch.nn.functional as F

    from fastformer.convert import to_torch_state_dict
    from reproduction.torch_reference import Model, TorchFastformerConfig

    check_supported(data_args, model_args, training_args)
    ours = recipe(data_args, model_args, training_args)
    resolved, data_dir = _paddle_run(paddle_run_dir)
    check_same_recipe(ours, resolved, os.path.join(paddle_run_dir, "resolved_args.json"))

    # ---- the Paddle run's tokenizer, data and initial weights
    initial_dir = os.path.join(paddle_run_dir, INITIAL_MODEL)
    saved_dtype = _saved_dtype(initial_dir)
    if saved_dtype != dtype:  # loading would silently convert them to `dtype`
        raise ValueError(f"the Paddle run's initial weights are {saved_dtype}, not {dtype}: give the dtype it "
                         "trained in")
    with default_dtype(dtype):
        initial, tokenizer = model_folder.load_model_dir(initial_dir)
    if tokenizer.pad_token_id != 0:
        raise ValueError(f"the official model pads with id 0, the Paddle run's tokenizer with {tokenizer.pad_token_id}")
    splits = {name: read_split(os.path.join(data_dir, f"{name}.jsonl")) for name in ("train", "dev", "test")}
    data = {name: EncodedDataset(encoding.encode_texts(tokenizer, texts, data_args.max_length), labels)
            for name, (texts, labels) in splits.items()}
    c = initial.config
    config = TorchFastformerConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size, hidden_act=c.hidden_act,
        hidden_dropout_prob=model_args.hidden_dropout_prob, max_position_embeddings=c.max_position_embeddings,
        layer_norm_eps=c.layer_norm_eps, initializer_range=c.initializer_range, num_labels=c.num_labels,
    )
    torch.manual_seed(training_args.seed)  # dropout masks
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    model = Model(config).to(getattr(torch, dtype))
    weights = to_torch_state_dict(initial.state_dict(), model.state_dict().keys(), dtype=np.dtype(dtype))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    del initial
    if masks is not None and not masks.torch_modules(model):
        raise ValueError("the reference model has no dropout layer to share masks with")

    # ---- batches as the Trainer draws them, eval sorted by length
    train = data["train"]
    sampler = train_sampler(train, training_args)
    collator = encoding.DataCollator(pad_id=tokenizer.pad_token_id)
    eval_bs = training_args.per_device_eval_batch_size
    eval_batches = {}
    for name in ("dev", "test"):
        ds = data[name].sorted_by_length()
        eval_batches[name] = _batches(ds, [range(i, min(i + eval_bs, len(ds))) for i in range(0, len(ds), eval_bs)],
                                      collator)
    loss_weights = None
    if training_args.sampling == "weighted_loss":
        loss_weights = torch.from_numpy(class_weights(train.labels, c.num_labels)).to(getattr(torch, dtype))

    # ---- training
    optimizer = torch.optim.Adam(model.parameters(), lr=training_args.learning_rate,
                                 betas=(training_args.adam_beta1, training_args.adam_beta2), eps=training_args.adam_epsilon)
    metric = (training_args.metric_for_best_model or "loss").replace("eval_", "")
    better = (lambda a, b: a > b) if training_args.greater_is_better else (lambda a, b: a < b)
    step_losses: List[float] = []
    epochs: List[dict] = []
    best, best_state = None, None
    train_seconds = 0.0
    model.train()
    for epoch in range(int(training_args.num_train_epochs)):
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        for batch in _batches(train, list(sampler), collator):
            if masks is not None:
                masks.set_step(len(step_losses))
            ids, y = torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss, score = model(ids, y)
            if loss_weights is not None:
                loss = F.cross_entropy(score, y, weight=loss_weights)
            loss.backward()
            optimizer.step()
            step_losses.append(float(loss.item()))
        train_seconds += time.perf_counter() - start
        dev = _evaluate(model, eval_batches["dev"])
        epochs.append({"epoch": epoch + 1, "step": len(step_losses), **{f"dev_{k}": v for k, v in dev.items()}})
        if best is None or better(dev[metric], best["dev_" + metric]):  # strictly better: the first on a tie
            best, best_state = epochs[-1], copy.deepcopy(model.state_dict())
        log(f"[pytorch] epoch {epoch + 1}: train loss {np.mean(step_losses[-len(sampler):]):.4f}, dev macro-F1 "
            f"{dev['macro_f1']:.4f}, accuracy {dev['accuracy']:.4f} ({train_seconds:.1f} s of training)")

    model.load_state_dict(best_state)
    test = _evaluate(model, eval_batches["test"])
    import paddle

    return {
        "framework": "pytorch",
        "versions": {"torch": torch.__version__, "paddle": paddle.__version__},
        "threads": threads,
        "recipe": ours,
        "paddle_run_dir": paddle_run_dir,
        "sizes": {name: len(ds) for name, ds in data.items()},
        "step_losses": step_losses,
        "epochs": epochs,
        "best_epoch": best["epoch"],
        **{k: v for k, v in best.items() if k.startswith("dev_")},
        **{f"test_{k}": v for k, v in test.items()},
        "train_seconds": round(train_seconds, 2),
        "dropout_masks": "shared" if masks is not None else "own",
        "dtype": dtype,
        **({"mask_draws": masks.draws_record()} if masks is not None else {}),
    }


def split_argv(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, List[str]]:
    """(this script's own flags, the train.py config and flags)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False,
        usage="%(prog)s [config.json] [train.py flags ...] --paddle_run_dir DIR [--output_json FILE]",
    )
    parser.add_argument("--paddle_run_dir", required=True,
                        help="train.py output folder with initial_model/ (made by reproduction/check_training_alignment.py)")
    parser.add_argument("--output_json", default=None, help=f"results file (default DIR/{OUTPUT_JSON})")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="train in this precision (float64 only for a Paddle run trained in float64)")
    return parser.parse_known_args(None if argv is None else list(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    own, train_argv = split_argv(argv)
    try:
        data_args, model_args, training_args = parse_args(train_argv)
        result = train_reference(data_args, model_args, training_args, own.paddle_run_dir, dtype=own.dtype)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["resolved_args"] = resolved_args(data_args, model_args, training_args)
    path = own.output_json or os.path.join(own.paddle_run_dir, OUTPUT_JSON)
    write_json(path, result)
    print(f"test macro-F1 {result['test_macro_f1']:.4f} accuracy {result['test_accuracy']:.4f} "
          f"(best epoch {result['best_epoch']}); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
