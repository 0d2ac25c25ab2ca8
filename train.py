"""Train a Fastformer review-rating classifier with the PaddleNLP Trainer.

    python train.py configs/amazon_electronics.json                        # the paper setting
    python train.py configs/demo.json --output_dir output/demo             # SYNTHETIC demo data, a few minutes on CPU
    python train.py configs/amazon_electronics.json --learning_rate 5e-4   # any flag overrides the config

Steps: sample and split the raw reviews into <output_dir>/data (reused when already prepared with the same
arguments; `demo_data` generates synthetic reviews first when the raw file is missing), build the word vocabulary
from the training split only, train with class-balanced batches (see `--sampling`), evaluate macro-F1 on dev after
every epoch, keep the best checkpoint, and report accuracy and macro-F1 on test.

Output folder:
  resolved_args.json          every argument of the latest run (config + command line + defaults)
  resolved_args_history.jsonl one JSON line per run (time, command line, resumed checkpoint, every argument), appended
  data/                       the prepared dataset (train/dev/test.jsonl, label.txt, stats.json)
  checkpoint-<step>/          one per epoch, never deleted; a rerun resumes from the last one (or
                              --resume_from_checkpoint PATH picks one). --overwrite_output_dir (start from scratch)
                              refuses a folder that already holds checkpoints: pick a new --output_dir or move them
  runs/<date>_<host>/         VisualDL logs (loss, learning rate, dev metrics): visualdl --logdir <output_dir>/runs
  model/                      the final (best) model: config.json with id2label, model_state.pdparams, vocab.txt,
                              tokenizer files, training_args.json; what evaluate.py / export_model.py read
  train_results.json, test_results.json

Threads: Paddle runs its CPU math (MKL) on one thread unless OMP_NUM_THREADS is set when it loads; this script sets
OMP_NUM_THREADS (and MKL_NUM_THREADS) to the number of cores unless you set them yourself, e.g.
`OMP_NUM_THREADS=1 python train.py ...` on a shared machine. `import fastformer` also sets MKL_DEBUG_CPU_TYPE=5
(MKL's fast path on AMD CPUs); both must happen before paddle is imported, hence the import order below.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import fastformer  # noqa: E402,F401  (before paddle: sets MKL_DEBUG_CPU_TYPE)

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from typing import List, Optional, Sequence  # noqa: E402

import paddle  # noqa: E402
from paddlenlp.trainer import get_last_checkpoint, set_seed  # noqa: E402
from paddlenlp.trainer.trainer_utils import PREFIX_CHECKPOINT_DIR  # noqa: E402

from data_process import generate_demo_reviews, prepare_dataset, read_split  # noqa: E402
from fastformer.task import DataCollator, build_model, encode_texts, label_maps, save_model_dir  # noqa: E402
from fastformer.tokenizer import FastformerTokenizer  # noqa: E402
from fastformer.training import (  # noqa: E402
    EncodedDataset,
    FastformerTrainer,
    compute_metrics,
    parse_args,
    resolved_args,
)

logger = logging.getLogger("train")

RESOLVED_ARGS = "resolved_args.json"
RESOLVED_ARGS_HISTORY = "resolved_args_history.jsonl"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def _write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def existing_checkpoints(output_dir: str) -> List[str]:
    """The checkpoint-<step> folders in `output_dir`, by step."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir)
             if (m := _CHECKPOINT_RE.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    return [name for _, name in sorted(found)]


def _append_history(path: str, all_args: dict, argv: Optional[Sequence[str]], checkpoint: Optional[str]) -> None:
    """Append this run's arguments as one JSON line: resolved_args.json only holds the latest run's."""
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "resumed_from": checkpoint,
        "args": all_args,
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def find_checkpoint(training_args) -> Optional[str]:
    """The checkpoint to resume from: the one named by --resume_from_checkpoint, else the last one in output_dir
    (unless --overwrite_output_dir), else None.

    --overwrite_output_dir on a folder that already holds checkpoints is an error (FileExistsError naming them): the
    new run would write over some of them and leave the higher-numbered ones, so a later plain run would resume from
    the old run. Nothing is ever deleted; the user picks a new --output_dir or moves the checkpoints away.
    """
    if training_args.overwrite_output_dir:
        stale = existing_checkpoints(training_args.output_dir)
        if stale:
            raise FileExistsError(
                f"--overwrite_output_dir: {training_args.output_dir!r} already holds checkpoints of an earlier run "
                f"({', '.join(stale)}); a fresh run would mix its checkpoints with them. Pick a new --output_dir, or "
                "move those checkpoint folders away (nothing is deleted); without --overwrite_output_dir the run "
                "resumes from the last one."
            )
    explicit = training_args.resume_from_checkpoint
    if explicit:
        if not os.path.isdir(explicit):
            raise FileNotFoundError(f"--resume_from_checkpoint {explicit!r} is not a folder")
        return explicit
    if training_args.overwrite_output_dir or not os.path.isdir(training_args.output_dir):
        return None
    return get_last_checkpoint(training_args.output_dir)


def prepare_data(data_args, output_dir: str, show_progress: bool) -> str:
    """Prepare (or reuse) the dataset folder and return its path."""
    data_dir = data_args.data_dir or os.path.join(output_dir, "data")
    if not data_args.input_file:
        missing = [s for s in ("train.jsonl", "dev.jsonl", "test.jsonl") if not os.path.isfile(os.path.join(data_dir, s))]
        if missing:
            raise FileNotFoundError(f"no --input_file given and {data_dir!r} lacks {', '.join(missing)}")
        logger.info("using the prepared dataset in %s", data_dir)
        return data_dir
    if not os.path.isfile(data_args.input_file):
        if not data_args.demo_data:
            raise FileNotFoundError(
                f"raw review file {data_args.input_file!r} not found. Download the Amazon Electronics reviews (see "
                "README: 'The real data'), pass --input_file PATH, or use configs/demo.json for synthetic data."
            )
        logger.info("generating %d SYNTHETIC demo reviews into %s", data_args.demo_num_reviews, data_args.input_file)
        generate_demo_reviews(data_args.input_file, data_args.demo_num_reviews, seed=data_args.demo_seed)
    stats = prepare_dataset(
        data_args.input_file,
        data_dir,
        num_samples=data_args.num_samples,
        split_sizes=list(data_args.split_sizes) or None,
        seed=data_args.data_seed,
        balanced=data_args.balanced_sample,
        text_fields=tuple(data_args.text_fields),
        show_progress=show_progress,
    )
    logger.info("dataset in %s: %s", data_dir, {k: v["size"] for k, v in stats["splits"].items()})
    return data_dir


def load_tokenizer(train_texts: List[str], data_args, checkpoint: Optional[str]) -> FastformerTokenizer:
    """The checkpoint's vocabulary when resuming, else one built from the training texts."""
    if checkpoint and os.path.isfile(os.path.join(checkpoint, "vocab.txt")):
        logger.info("resuming: vocabulary of %s", checkpoint)
        return FastformerTokenizer.from_pretrained(checkpoint)
    return FastformerTokenizer.build_from_corpus(
        train_texts, min_freq=data_args.vocab_min_freq, max_size=data_args.vocab_max_size or None
    )


def _eval_entry(log_history: list, step: Optional[int]) -> dict:
    """The dev metrics logged at `step` (the last evaluation when step is None)."""
    entries = [e for e in log_history if "eval_macro_f1" in e and (step is None or e.get("step") == step)]
    return entries[-1] if entries else {}


def main(argv: Optional[Sequence[str]] = None, callbacks: Optional[list] = None) -> dict:
    """Run training as on the command line (`argv` without the program name); returns the results dict.

    `callbacks`: extra PaddleNLP `TrainerCallback`s for the Trainer (e.g. the initial-weights recorder of
    `tools/check_training_alignment.py`); none from the command line."""
    data_args, model_args, training_args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    wall_start = time.perf_counter()
    output_dir = training_args.output_dir
    os.makedirs(output_dir, exist_ok=True)
    checkpoint = find_checkpoint(training_args)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    all_args = resolved_args(data_args, model_args, training_args)
    _write_json(os.path.join(output_dir, RESOLVED_ARGS), all_args)
    _append_history(os.path.join(output_dir, RESOLVED_ARGS_HISTORY), all_args, argv, checkpoint)

    # ---- data and vocabulary
    data_dir = prepare_data(data_args, output_dir, show_progress=not training_args.disable_tqdm)
    splits = {name: read_split(os.path.join(data_dir, f"{name}.jsonl")) for name in ("train", "dev", "test")}
    tokenizer = load_tokenizer(splits["train"][0], data_args, checkpoint)
    logger.info("vocabulary: %d tokens (min_freq %d)", len(tokenizer), data_args.vocab_min_freq)
    datasets = {
        name: EncodedDataset(encode_texts(tokenizer, texts, data_args.max_length), labels)
        for name, (texts, labels) in splits.items()
    }
    # Evaluation order does not matter: sorted by length (in _train_and_report), batches need almost no padding.
    if not len(datasets["dev"]) and training_args.load_best_model_at_end:
        raise ValueError("the dev split is empty: --load_best_model_at_end needs it (pass --load_best_model_at_end false)")

    # ---- model and trainer
    # Fresh parameter/optimizer names (embedding_0.w_0, ..._moment1_0) as in a new process, whatever ran before in
    # this one: PaddleNLP restores optimizer state by these names, so resuming needs them to match the checkpoint.
    with paddle.utils.unique_name.guard():
        return _train_and_report(data_args, model_args, training_args, all_args, tokenizer, datasets, checkpoint,
                                 data_dir, wall_start, callbacks)


def _train_and_report(data_args, model_args, training_args, all_args, tokenizer, datasets, checkpoint, data_dir,
                      wall_start, callbacks=None) -> dict:
    output_dir = training_args.output_dir
    dev_dataset = datasets["dev"].sorted_by_length() if len(datasets["dev"]) else None
    test_dataset = datasets["test"].sorted_by_length() if len(datasets["test"]) else None
    set_seed(training_args.seed)
    model = build_model(tokenizer, **model_args.config_kwargs(data_args.max_length))
    num_labels = len(label_maps()[0])
    trainer = FastformerTrainer(
        model=model,
        args=training_args,
        data_collator=DataCollator(pad_id=tokenizer.pad_token_id),
        train_dataset=datasets["train"],
        eval_dataset=dev_dataset,
        tokenizer=tokenizer,
        compute_metrics=compute_metrics,
        num_labels=num_labels,
        callbacks=callbacks,
    )

    train_start = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    train_wall = time.perf_counter() - train_start
    throughput = trainer.throughput(train_wall - trainer.eval_seconds - trainer.save_seconds)
    train_metrics = dict(train_result.metrics, **throughput)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()
    logger.info(
        "training throughput: %s real tokens/s, %s padded tokens/s (%s%% padding), %.1f s of training",
        throughput["train_real_tokens_per_second"], throughput["train_padded_tokens_per_second"],
        None if throughput["padding_fraction"] is None else round(100 * throughput["padding_fraction"], 1),
        throughput["train_seconds"],
    )

    # ---- final model folder
    model_dir = os.path.join(output_dir, "model")
    save_model_dir(trainer.model, tokenizer, model_dir, max_length=data_args.max_length)  # the truncation used here
    _write_json(os.path.join(model_dir, "training_args.json"), all_args)

    # ---- dev metrics of the kept model (from the log when available) and test metrics
    results = {"output_dir": output_dir, "model_dir": model_dir, "data_dir": data_dir}
    best = trainer.state.best_model_checkpoint
    if dev_dataset is not None:
        step = int(best.rstrip("/").rsplit("-", 1)[-1]) if training_args.load_best_model_at_end and best else None
        dev = _eval_entry(trainer.state.log_history, step)
        if not dev:
            dev = trainer.evaluate()
        results.update({k.replace("eval_", "dev_"): v for k, v in dev.items() if k.startswith("eval_")})
        results["dev_step"] = dev.get("step", trainer.state.global_step)
    results["best_checkpoint"] = best
    if test_dataset is not None:
        test_metrics = trainer.evaluate(eval_dataset=test_dataset, metric_key_prefix="test")
        results.update({k: v for k, v in test_metrics.items() if k.startswith("test_")})
    results.update(
        {
            "global_step": trainer.state.global_step,
            "epochs": training_args.num_train_epochs,
            "resumed_from": checkpoint,
            "vocab_size": len(tokenizer),
            "num_parameters": int(sum(p.size for p in trainer.model.parameters())),
            "sizes": {name: len(ds) for name, ds in datasets.items()},
            **throughput,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "wall_seconds": round(time.perf_counter() - wall_start, 2),
        }
    )
    _write_json(os.path.join(output_dir, "test_results.json"), results)
    logger.info(
        "dev macro-F1 %.4f accuracy %.4f | test macro-F1 %s accuracy %s | model in %s",
        results.get("dev_macro_f1", float("nan")), results.get("dev_accuracy", float("nan")),
        results.get("test_macro_f1"), results.get("test_accuracy"), model_dir,
    )
    return results


if __name__ == "__main__":
    main()
