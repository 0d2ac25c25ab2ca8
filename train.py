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
                              refuses a folder that already holds checkpoints: pick a new --output_dir or move them.
                              Each is written to a hidden .checkpoint-<step>.<host>-<pid>.*.tmp folder and renamed
                              when complete, with checksums.json (SHA-256 of its files); a rerun removes the staging
                              folders of killed saves, skips a damaged or incomplete last checkpoint with a warning
                              and takes the newest good one. A resume keeps the run's
                              data, model and batching settings (else it refuses, naming each old -> new value, and
                              writes nothing); epochs or steps, the learning rate and its schedule, the other optimizer
                              settings, evaluation, logging and saving may change (resolved_args_history.jsonl)
  runs/<date>_<host>/         VisualDL logs (loss, learning rate, dev metrics): visualdl --logdir <output_dir>/runs
  model/                      the final (best) model: config.json with id2label, model.safetensors, checksums.json,
                              vocab.txt, tokenizer files, training_args.json; what evaluate.py / export_model.py read
  train_results.json, test_results.json

Threads: Paddle runs its CPU math (MKL) on one thread unless OMP_NUM_THREADS is set when it loads; this script sets
OMP_NUM_THREADS (and MKL_NUM_THREADS) to the number of cores (divided among the processes that
`paddle.distributed.launch` starts on this machine) unless you set them yourself, e.g.
`OMP_NUM_THREADS=1 python train.py ...` on a shared machine. `import fastformer` also sets MKL_DEBUG_CPU_TYPE=5
(MKL's fast path on AMD CPUs); both must happen before paddle is imported, hence the import order below.

Several GPUs or machines: `python -m paddle.distributed.launch --nproc_per_node N train.py ...` (README: "Several
GPUs or machines"). --per_device_train_batch_size is per process; each process trains on its own slice of every
global batch. The first process (rank 0) prepares the data and the vocabulary (and --word_vectors train), picks the
checkpoint to resume from and sends them to the others, and only it writes the output folder: resolved args,
checkpoints, model/, results (with --save_on_each_node, the first process of each machine). With --logit_adjustment
dev every process predicts the dev split, the first fits tau and every process applies that tau; with
--average_checkpoints the first averages the saved checkpoints and every process takes those weights.
"""

import os

_PROCESSES_HERE = max(1, int(os.environ.get("PADDLE_LOCAL_SIZE") or 1))  # set by paddle.distributed.launch
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _PROCESSES_HERE)))
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import fastformer  # noqa: E402,F401  (before paddle: sets MKL_DEBUG_CPU_TYPE)

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from typing import List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddlenlp.trainer import set_seed  # noqa: E402
from paddlenlp.trainer.trainer_utils import PREFIX_CHECKPOINT_DIR  # noqa: E402

from data_process.demo_data import generate_demo_reviews
from data_process.prepare import prepare_dataset
from fastformer.splits import read_split
from fastformer import cpu_ops  # noqa: E402
from fastformer.cli import UserError, run_main  # noqa: E402
from fastformer.fileio import atomic_write, remove_leftovers  # noqa: E402
from fastformer.encoding import DataCollator, encode_texts
from fastformer.labels import label_maps
from fastformer.model_folder import PICKLE_WEIGHTS_FILE, build_model, save_model_dir
from fastformer.tokenizer import FastformerTokenizer  # noqa: E402
from fastformer.training import (  # noqa: E402
    AdjustedMetrics,
    EncodedDataset,
    FastformerTrainer,
    average_weights,
    checkpoint_problem,
    classification_metrics,
    close_processes,
    compute_metrics,
    existing_checkpoints,
    fit_logit_adjustment,
    from_first_process,
    log_prior,
    parse_args,
    resolved_args,
    resume_conflicts,
    weights_problem,
)

logger = logging.getLogger("train")

RESOLVED_ARGS = "resolved_args.json"
RESOLVED_ARGS_HISTORY = "resolved_args_history.jsonl"
_CHECKPOINT_NAME = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-\d+")
_STAGING_RE = re.compile(rf"^\.{PREFIX_CHECKPOINT_DIR}-\d+\..*\.tmp$")  # FastformerTrainer._save_checkpoint's


def _write_json(path: str, obj) -> None:
    """Atomically; NaN is kept as written by json (a diverged run still gets its results file)."""
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


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
    """The checkpoint to resume from: the one named by --resume_from_checkpoint (a UserError when it is damaged),
    else the newest good one in output_dir (unless --overwrite_output_dir), else None. A damaged or incomplete
    checkpoint (`checkpoint_problem`) is skipped with a warning naming it; no checkpoint is deleted (the staging
    folders of killed saves are removed first: they never were checkpoints).

    --overwrite_output_dir on a folder that already holds checkpoints is an error (FileExistsError naming them): the
    new run would write over some of them and leave the higher-numbered ones, so a later plain run would resume from
    the old run. Nothing is ever deleted; the user picks a new --output_dir or moves the checkpoints away.
    """
    # The staging folders of saves that were killed are this script's own half-written copies, never a checkpoint
    # (none was renamed to checkpoint-<step>): removing them is not deleting a checkpoint. Those of a writer that
    # still runs, or of another host, are left alone.
    removed = remove_leftovers(training_args.output_dir, _CHECKPOINT_NAME)
    if removed:
        logger.info("removed the staging folders of interrupted checkpoint saves in %s: %s", training_args.output_dir,
                    ", ".join(removed))
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
        problem = checkpoint_problem(explicit)
        if problem:
            raise UserError(f"--resume_from_checkpoint {explicit!r} cannot be resumed from: {problem}")
        return explicit
    if training_args.overwrite_output_dir or not os.path.isdir(training_args.output_dir):
        return None
    output_dir = training_args.output_dir
    interrupted = sorted(name for name in os.listdir(output_dir) if _STAGING_RE.match(name))
    if interrupted:
        logger.warning("%s holds staging folders of checkpoint saves (%s) whose writer may still run (or ran on "
                       "another host, or an older version): never used as checkpoints", output_dir,
                       ", ".join(interrupted))
    for name in reversed(existing_checkpoints(output_dir)):  # the newest good one
        path = os.path.join(output_dir, name)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping checkpoint %s: %s", path, problem)
    if existing_checkpoints(output_dir):
        logger.warning("no usable checkpoint in %s: training starts from the beginning", output_dir)
    return None


def check_resume(checkpoint: Optional[str], all_args: dict) -> Optional[str]:
    """`checkpoint`, or a `UserError` (nothing written yet) when this run's data, model or batching settings differ from
    those of the run that wrote it, recorded in the resolved_args.json of the checkpoint's folder
    (`training.resume_conflicts`): the old and new value of each. Epochs, steps, the optimizer's hyper-parameters,
    evaluation, logging and saving may change. Without the record, `check_checkpoint_weights` still applies."""
    if not checkpoint:
        return checkpoint
    record = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), RESOLVED_ARGS)
    if not os.path.isfile(record):
        logger.warning("%s: no %s beside it, its settings are not compared with this run's", checkpoint, RESOLVED_ARGS)
        return checkpoint
    try:
        with open(record, encoding="utf-8") as f:
            old = json.load(f)
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot check that {checkpoint} may be resumed with these settings: {record} is unreadable "
                        f"({exc})") from None
    conflicts = resume_conflicts(old, all_args)
    if conflicts:
        raise UserError(
            f"cannot resume from {checkpoint}: settings differ from its run's ({record}): {'; '.join(conflicts)}. "
            "Resume with that run's settings, or train anew in another --output_dir; nothing was changed"
        )
    return checkpoint


def check_checkpoint_weights(checkpoint: str, model) -> None:
    """A `UserError` when the weights of `checkpoint` are not exactly the tensors of `model` (names and shapes)."""
    state = paddle.load(os.path.join(checkpoint, PICKLE_WEIGHTS_FILE), return_numpy=True)  # the run's own file
    problem = weights_problem(state, model)
    if problem:
        raise UserError(f"cannot resume from {checkpoint}: its weights do not fit the model of these settings "
                        f"({problem}); nothing was changed")


def prepare_data(data_args, output_dir: str, show_progress: bool) -> str:
    """Prepare (or reuse) the dataset folder and return its path."""
    data_dir = data_args.data_dir or os.path.join(output_dir, "data")
    if not data_args.input_file:
        missing = [s for s in ("train.jsonl", "dev.jsonl", "test.jsonl") if not os.path.isfile(os.path.join(data_dir, s))]
        if missing:
            raise FileNotFoundError(f"no --input_file given and {data_dir!r} lacks {', '.join(missing)}")
        logger.info("using the prepared dataset in %s", data_dir)
        return data_dir
    if os.path.isdir(data_args.input_file):
        raise UserError(f"--input_file {data_args.input_file!r} is a folder: give the raw review file (.json(.gz) or "
                        ".jsonl(.gz)), or --input_file '' --data_dir FOLDER for a prepared dataset")
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
        split_by=data_args.split_by,
    )
    logger.info("dataset in %s: %s", data_dir, {k: v["size"] for k, v in stats["splits"].items()})
    return data_dir


def load_tokenizer(train_texts: List[str], data_args, checkpoint: Optional[str]) -> FastformerTokenizer:
    """The checkpoint's vocabulary when resuming, else one built from the training texts."""
    if checkpoint and os.path.isfile(os.path.join(checkpoint, "vocab.txt")):
        logger.info("resuming: vocabulary of %s", checkpoint)
        return FastformerTokenizer.from_pretrained(checkpoint)
    if data_args.init_from:
        logger.info("vocabulary of --init_from %s", data_args.init_from)
        return FastformerTokenizer.from_pretrained(data_args.init_from)
    return FastformerTokenizer.build_from_corpus(
        train_texts, min_freq=data_args.vocab_min_freq, max_size=data_args.vocab_max_size or None
    )


def _eval_entry(log_history: list, step: Optional[int]) -> dict:
    """The dev metrics logged at `step` (the last evaluation when step is None)."""
    entries = [e for e in log_history if "eval_macro_f1" in e and (step is None or e.get("step") == step)]
    return entries[-1] if entries else {}


def load_data(data_args, model_args, training_args, checkpoint: Optional[str]):
    """(data_dir, tokenizer, {split: EncodedDataset}, word vectors file or None): the dataset prepared (or reused)
    and encoded; with --word_vectors train, the vectors learnt from the training split (made once, kept in data_dir)."""
    data_dir = prepare_data(data_args, training_args.output_dir, show_progress=not training_args.disable_tqdm)
    splits = {name: read_split(os.path.join(data_dir, f"{name}.jsonl")) for name in ("train", "dev", "test")}
    tokenizer = load_tokenizer(splits["train"][0], data_args, checkpoint)
    logger.info("vocabulary: %d tokens (min_freq %d)", len(tokenizer), data_args.vocab_min_freq)
    datasets = {
        name: EncodedDataset(encode_texts(tokenizer, texts, data_args.max_length), labels)
        for name, (texts, labels) in splits.items()
    }
    return data_dir, tokenizer, datasets, word_vectors_file(data_args, model_args, data_dir, tokenizer,
                                                            splits["train"][0])


def init_encoder(model, path: str) -> None:
    """Start from the encoder weights (`fastformer.*`: embeddings, layers, pooler) of the model folder `path`; the
    classifier keeps its fresh initialisation. The folder's architecture must match the configured one."""
    from fastformer.model_folder import load_model_dir

    source, _ = load_model_dir(path)
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "attention_type", "pooler_type", "use_value_projection", "share_attention_layers"):
        if getattr(source.config, name) != getattr(model.config, name):
            raise UserError(f"--init_from {path}: {name} is {getattr(source.config, name)!r} there, "
                            f"{getattr(model.config, name)!r} here")
    weights = {k: v for k, v in source.state_dict().items() if k.startswith("fastformer.")}
    own = model.state_dict()
    for name, value in weights.items():
        if name not in own or tuple(own[name].shape) != tuple(value.shape):
            raise UserError(f"--init_from {path}: weight {name} {tuple(value.shape)} does not fit this model")
        own[name].set_value(value)
    logger.info("encoder initialised from %s (%d tensors)", path, len(weights))


def word_vectors_file(data_args, model_args, data_dir: str, tokenizer, train_texts: List[str]) -> Optional[str]:
    """The --word_vectors file; for 'train', vectors learnt from `train_texts`, the training split (made once, kept
    in data_dir)."""
    if data_args.word_vectors != "train":
        return data_args.word_vectors or None
    path = os.path.join(data_dir, f"word_vectors_{model_args.hidden_size}.txt")
    if not os.path.isfile(path):
        from data_process.word_vectors import train_word_vectors, write_word_vectors

        logger.info("learning %d-d word vectors from the training split into %s", model_args.hidden_size, path)
        words, vectors = train_word_vectors(train_texts, tokenizer.tokenize, dim=model_args.hidden_size)
        write_word_vectors(path, words, vectors)
    return path


def average_saved_checkpoints(trainer) -> List[str]:
    """--average_checkpoints: give the model the mean of the weights of the checkpoints this run saved (every good
    checkpoint-<step> of output_dir up to the last step; a damaged one is skipped with a warning naming it) and
    return their names. The first process averages, every process gets the same weights."""
    args = trainer.args

    def pick_and_average():
        names = []
        for name in existing_checkpoints(args.output_dir, up_to_step=trainer.state.global_step):
            problem = checkpoint_problem(os.path.join(args.output_dir, name))
            if problem:
                logger.warning("--average_checkpoints: skipping %s: %s", os.path.join(args.output_dir, name), problem)
            else:
                names.append(name)
        if not names:
            raise UserError(f"--average_checkpoints: no usable checkpoint in {args.output_dir!r} to average")
        return names, average_weights([os.path.join(args.output_dir, name) for name in names])

    names, weights = from_first_process(args, pick_and_average)
    trainer.model.set_state_dict({name: paddle.to_tensor(value) for name, value in weights.items()})
    logger.info("weights of the model kept: the mean of %d checkpoints (%s)", len(names), ", ".join(names))
    return names


def adjust_logits_on_dev(trainer, dev_dataset, prior) -> dict:
    """Fit the logit adjustment's tau on the dev predictions of the kept model and fold `-tau * prior` into its
    classifier bias (so the saved model, its export and every prediction include it); returns what was done."""
    logits = trainer.predict(dev_dataset).predictions  # every process predicts the whole dev split (no collective)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits

    def fit():
        before = classification_metrics(dev_dataset.labels, np.asarray(logits).argmax(axis=-1))
        return (before, *fit_logit_adjustment(logits, dev_dataset.labels, prior))

    # With several processes the first one fits tau and every process applies it: the same model everywhere.
    before, tau, after = from_first_process(trainer.args, fit)
    model = trainer.model
    bias = model.classifier.bias
    bias.set_value(bias.numpy() - (tau * prior).astype(bias.numpy().dtype))
    adjustment = {"tau": tau, "log_prior": [round(float(p), 6) for p in prior], "fitted_on": "dev",
                  "dev_before": before, "dev_after": after}
    model.config.logit_adjustment = adjustment  # recorded in config.json (already folded into the bias)
    logger.info("logit adjustment fitted on dev: tau %.2f, dev macro-F1 %.4f -> %.4f, accuracy %.4f -> %.4f", tau,
                before["macro_f1"], after["macro_f1"], before["accuracy"], after["accuracy"])
    return adjustment


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
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):  # checked by every process: all stop
        raise UserError(f"--output_dir {output_dir!r} is a file, not a folder")
    writer = training_args.should_save  # one process writes the output folder (rank 0; see --save_on_each_node)
    if writer:
        os.makedirs(output_dir, exist_ok=True)
    all_args = resolved_args(data_args, model_args, training_args)
    # The first process picks the checkpoint (checking the candidates' checksums once, and that this run's settings
    # may continue it) and tells the others, so that every process resumes from the same one.
    checkpoint = from_first_process(training_args, lambda: check_resume(find_checkpoint(training_args), all_args))
    if checkpoint:
        logger.info("resuming from %s", checkpoint)

    if training_args.world_size > 1 and paddle.get_device() == "cpu":
        # The compiled CPU kernels are built (or loaded) on first use; done now, a process still compiling does not
        # keep the others waiting inside the first step's gradient all-reduce (gloo gives up after 30 s).
        cpu_ops.load_ops()
    # ---- data and vocabulary: made by the first process only (no two processes writing the same files) and sent
    # to the others, which need no copy of the raw reviews
    data_dir, tokenizer, datasets, word_vectors = from_first_process(
        training_args, lambda: load_data(data_args, model_args, training_args, checkpoint)
    )
    if word_vectors and training_args.process_index > 0 and not os.path.isfile(word_vectors):
        # Not on this machine (made by the first process, or only given to it): this process's embeddings are
        # replaced by the first process's anyway when paddle.DataParallel starts.
        word_vectors = None
    # Evaluation order does not matter: sorted by length (in _train_and_report), batches need almost no padding.
    if not len(datasets["dev"]) and training_args.load_best_model_at_end:
        raise ValueError("the dev split is empty: --load_best_model_at_end needs it (pass --load_best_model_at_end false)")

    # ---- model and trainer
    # Fresh parameter/optimizer names (embedding_0.w_0, ..._moment1_0) as in a new process, whatever ran before in
    # this one: PaddleNLP restores optimizer state by these names, so resuming needs them to match the checkpoint.
    with paddle.utils.unique_name.guard():
        results = _train_and_report(data_args, model_args, training_args, all_args, tokenizer, datasets, checkpoint,
                                    data_dir, word_vectors, wall_start, callbacks, argv)
    close_processes(training_args)
    return results


def _train_and_report(data_args, model_args, training_args, all_args, tokenizer, datasets, checkpoint, data_dir,
                      word_vectors, wall_start, callbacks=None, argv=None) -> dict:
    output_dir = training_args.output_dir
    dev_dataset = datasets["dev"].sorted_by_length() if len(datasets["dev"]) else None
    test_dataset = datasets["test"].sorted_by_length() if len(datasets["test"]) else None
    set_seed(training_args.seed)
    model = build_model(tokenizer, word_vectors=word_vectors, **model_args.config_kwargs(data_args.max_length))
    if data_args.init_from:
        init_encoder(model, data_args.init_from)
    if checkpoint:  # its weights must fit this model (checked again when the Trainer loads them)
        from_first_process(training_args, lambda: check_checkpoint_weights(checkpoint, model))
    writer = training_args.should_save
    if writer:  # only now: a run refused above leaves the folder as it was
        _write_json(os.path.join(output_dir, RESOLVED_ARGS), all_args)
        _append_history(os.path.join(output_dir, RESOLVED_ARGS_HISTORY), all_args, argv, checkpoint)
    num_labels = len(label_maps()[0])
    prior = log_prior(datasets["train"].labels, num_labels)
    dev_metrics = AdjustedMetrics(prior) if training_args.logit_adjustment == "dev" else compute_metrics
    trainer = FastformerTrainer(
        model=model,
        args=training_args,
        data_collator=DataCollator(pad_id=tokenizer.pad_token_id),
        train_dataset=datasets["train"],
        eval_dataset=dev_dataset,
        tokenizer=tokenizer,
        compute_metrics=dev_metrics,
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

    averaged = average_saved_checkpoints(trainer) if training_args.average_checkpoints else None
    averaged_dev = trainer.evaluate() if averaged and dev_dataset is not None else None  # the kept model's, adjusted
    adjustment = None
    if training_args.logit_adjustment == "dev" and dev_dataset is not None:
        adjustment = adjust_logits_on_dev(trainer, dev_dataset, prior)
    trainer.compute_metrics = compute_metrics  # test: plain metrics of the saved model, nothing fitted on it

    # ---- final model folder
    model_dir = os.path.join(output_dir, "model")
    if writer:
        save_model_dir(trainer.model, tokenizer, model_dir, max_length=data_args.max_length,  # the truncation used
                       extra_json={"training_args.json": all_args})

    # ---- dev metrics of the kept model (from the log when available) and test metrics
    results = {"output_dir": output_dir, "model_dir": model_dir, "data_dir": data_dir}
    best = trainer.state.best_model_checkpoint
    if dev_dataset is not None:
        step = int(best.rstrip("/").rsplit("-", 1)[-1]) if training_args.load_best_model_at_end and best else None
        dev = averaged_dev or _eval_entry(trainer.state.log_history, step)
        if not dev:
            dev = trainer.evaluate()
        results.update({k.replace("eval_", "dev_"): v for k, v in dev.items() if k.startswith("eval_")})
        results["dev_step"] = dev.get("step", trainer.state.global_step)
    results["best_checkpoint"] = best
    if averaged:
        results["averaged_checkpoints"] = averaged
    if adjustment:
        results["logit_adjustment"] = adjustment
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
    if writer:
        _write_json(os.path.join(output_dir, "test_results.json"), results)
    logger.info(
        "dev macro-F1 %.4f accuracy %.4f | test macro-F1 %s accuracy %s | model in %s",
        results.get("dev_macro_f1", float("nan")), results.get("dev_accuracy", float("nan")),
        results.get("test_macro_f1"), results.get("test_accuracy"), model_dir,
    )
    return results


if __name__ == "__main__":
    sys.exit(run_main(main))
