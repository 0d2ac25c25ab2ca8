"""Train a Fastformer text classifier (a review-rating one on Amazon reviews) with the PaddleNLP Trainer.

    python train.py configs/amazon_electronics.json                        # the paper setting
    python train.py configs/demo.json --output_dir output/demo             # SYNTHETIC demo data, a few minutes on CPU
    python train.py configs/amazon_electronics.json --learning_rate 5e-4   # any flag overrides the config
    python train.py configs/amazon_electronics.json --train_file mine.csv --test_file test.csv \
        --text_column text --label_column label --output_dir output/mine  # your own labelled data (docs/own_data.md)

Steps: prepare the data, build the vocabulary and the model, train, keep the best checkpoint (or their average), fit
the logit adjustment, save <output_dir>/model and report dev and test metrics. The output folder, resuming and
several processes: docs/training.md.
"""

from __future__ import annotations

import fastformer.training  # noqa: F401  (first, before paddle loads: MKL settings and CPU threads, fastformer/env.py)

import logging
import os
import sys
import time
from typing import List, Optional, Sequence

from fastformer_data.demo_data import generate_demo_reviews
from fastformer_data.labelled_files import prepare_labelled_files
from fastformer_data.prepare import prepare_dataset
from fastformer_data.word_vectors import train_word_vectors, write_word_vectors
from fastformer.cli import UserError, run_main
from fastformer.encoding import DataCollator, encode_texts
from fastformer.splits import read_label_names, read_split
from fastformer.training.stored_help import asks_for_help, print_stored_help

logger = logging.getLogger("train")


def prepare_data(data_args, output_dir: str, show_progress: bool) -> str:
    """Prepare (or reuse) the dataset folder and return its path."""
    data_dir = data_args.data_dir or os.path.join(output_dir, "data")
    if data_args.train_file:  # your own labelled files (the Amazon sampling settings do not apply)
        stats = prepare_labelled_files(
            data_args.train_file, data_dir, dev_file=data_args.dev_file or None,
            test_file=data_args.test_file or None, text_columns=data_args.text_column,
            label_column=data_args.label_column, label_file=data_args.label_file or None,
            dev_share=data_args.dev_share, seed=data_args.data_seed,
        )
        logger.info("dataset in %s: %s; labels %s", data_dir, {k: v["size"] for k, v in stats["splits"].items()},
                    stats["label_names"])
        return data_dir
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
    from fastformer.tokenizer import FastformerTokenizer

    if checkpoint and os.path.isfile(os.path.join(checkpoint, "vocab.txt")):
        logger.info("resuming: vocabulary of %s", checkpoint)
        return FastformerTokenizer.from_pretrained(checkpoint)
    if data_args.init_from:
        logger.info("vocabulary of --init_from %s", data_args.init_from)
        return FastformerTokenizer.from_pretrained(data_args.init_from)
    return FastformerTokenizer.build_from_corpus(
        train_texts, min_freq=data_args.vocab_min_freq, max_size=data_args.vocab_max_size or None
    )


def load_data(data_args, model_args, training_args, checkpoint: Optional[str]):
    """(data_dir, label names, tokenizer, {split: EncodedDataset}, word vectors file or None): the dataset prepared
    (or reused) and encoded; with --word_vectors train, the vectors learnt from the training split (made once, kept in
    data_dir)."""
    from fastformer.training.dataset import EncodedDataset

    data_dir = prepare_data(data_args, training_args.output_dir, show_progress=not training_args.disable_tqdm)
    label_names = read_label_names(data_dir)
    splits = {name: read_split(os.path.join(data_dir, f"{name}.jsonl"), len(label_names))
              for name in ("train", "dev", "test")}
    tokenizer = load_tokenizer(splits["train"][0], data_args, checkpoint)
    logger.info("vocabulary: %d tokens (min_freq %d)", len(tokenizer), data_args.vocab_min_freq)
    datasets = {
        name: EncodedDataset(encode_texts(tokenizer, texts, data_args.max_length), labels)
        for name, (texts, labels) in splits.items()
    }
    return data_dir, label_names, tokenizer, datasets, word_vectors_file(data_args, model_args, data_dir, tokenizer,
                                                                         splits["train"][0])


def word_vectors_file(data_args, model_args, data_dir: str, tokenizer, train_texts: List[str]) -> Optional[str]:
    """The --word_vectors file; for 'train', vectors learnt from `train_texts`, the training split (made once, kept
    in data_dir)."""
    if data_args.word_vectors != "train":
        return data_args.word_vectors or None
    path = os.path.join(data_dir, f"word_vectors_{model_args.hidden_size}.txt")
    if not os.path.isfile(path):
        logger.info("learning %d-d word vectors from the training split into %s", model_args.hidden_size, path)
        words, vectors = train_word_vectors(train_texts, tokenizer.tokenize, dim=model_args.hidden_size)
        write_word_vectors(path, words, vectors)
    return path


def _rounded(value) -> str:
    """A metric as printed: 4 decimals, or "n/a" (no such split)."""
    return "n/a" if value is None else f"{value:.4f}"


def _eval_entry(log_history: list, step: Optional[int]) -> dict:
    """The dev metrics logged at `step` (the last evaluation when step is None)."""
    entries = [e for e in log_history if "eval_macro_f1" in e and (step is None or e.get("step") == step)]
    return entries[-1] if entries else {}


def main(argv: Optional[Sequence[str]] = None, callbacks: Optional[list] = None) -> dict:
    """Run training as on the command line (`argv` without the program name); returns the results dict.

    `callbacks`: extra PaddleNLP `TrainerCallback`s (e.g. reproduction/check_training_alignment.py's)."""
    # ---- --help from the stored text (paddle not loaded: under a second), then paddle and the Trainer
    if asks_for_help(sys.argv[1:] if argv is None else argv):
        print_stored_help()
        raise SystemExit(0)
    import paddle
    from paddlenlp.trainer import set_seed

    from fastformer import cpu_ops
    from fastformer.metrics import AdjustedMetrics, compute_metrics, log_prior
    from fastformer.model_folder import build_model, init_encoder, save_model_dir
    from fastformer.training.arguments import (
        RESOLVED_ARGS, RESOLVED_ARGS_HISTORY, append_history, parse_args, resolved_args, write_json_record,
    )
    from fastformer.training.checkpoints import average_saved_checkpoints
    from fastformer.training.curve import TrainingCurveCallback
    from fastformer.training.distributed import close_processes, from_first_process
    from fastformer.training.logit_adjustment import adjust_logits_on_dev
    from fastformer.training.resume import check_checkpoint_weights, check_resume, find_checkpoint
    from fastformer.training.trainer import FastformerTrainer

    # ---- arguments, and the checkpoint to resume from
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
    # The first process picks (and checks) the checkpoint and tells the others: all resume from the same one.
    checkpoint = from_first_process(training_args, lambda: check_resume(find_checkpoint(training_args), all_args))
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    if training_args.world_size > 1 and paddle.get_device() == "cpu":
        cpu_ops.load_ops()  # compiled now, not inside the first gradient all-reduce (gloo gives up after 30 s)

    # ---- data and vocabulary: made by the first process only and sent to the others
    data_dir, label_names, tokenizer, datasets, word_vectors = from_first_process(
        training_args, lambda: load_data(data_args, model_args, training_args, checkpoint)
    )
    if word_vectors and training_args.process_index > 0 and not os.path.isfile(word_vectors):
        word_vectors = None  # not on this machine: DataParallel gives every process the first one's embeddings
    if not len(datasets["dev"]) and training_args.load_best_model_at_end:
        raise ValueError("the dev split is empty: --load_best_model_at_end needs it (pass --load_best_model_at_end false)")
    dev_dataset = datasets["dev"].sorted_by_length() if len(datasets["dev"]) else None  # less padding
    test_dataset = datasets["test"].sorted_by_length() if len(datasets["test"]) else None

    # Fresh parameter/optimizer names (embedding_0.w_0, ...) as in a new process: a resume restores them by name.
    with paddle.utils.unique_name.guard():
        # ---- model and trainer
        set_seed(training_args.seed)
        model = build_model(tokenizer, word_vectors=word_vectors, label_names=label_names,
                            **model_args.config_kwargs(data_args.max_length))
        if data_args.init_from:
            init_encoder(model, data_args.init_from)
        if checkpoint:  # its weights must fit this model (checked again when the Trainer loads them)
            from_first_process(training_args, lambda: check_checkpoint_weights(checkpoint, model))
        if writer:  # only now: a run refused above leaves the folder as it was
            write_json_record(os.path.join(output_dir, RESOLVED_ARGS), all_args)
            append_history(os.path.join(output_dir, RESOLVED_ARGS_HISTORY), all_args, argv, checkpoint)
        num_labels = len(label_names)
        prior = log_prior(datasets["train"].labels, num_labels)
        trainer = FastformerTrainer(
            model=model,
            args=training_args,
            data_collator=DataCollator(pad_id=tokenizer.pad_token_id),
            train_dataset=datasets["train"],
            eval_dataset=dev_dataset,
            tokenizer=tokenizer,
            compute_metrics=AdjustedMetrics(prior) if training_args.logit_adjustment == "dev" else compute_metrics,
            num_labels=num_labels,
            callbacks=[TrainingCurveCallback(), *(callbacks or [])],  # training_curve.png in the output folder
        )

        # ---- train
        train_start = time.perf_counter()
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        train_wall = time.perf_counter() - train_start
        throughput = trainer.throughput(train_wall - trainer.eval_seconds - trainer.save_seconds)
        trainer.save_metrics("train", dict(train_result.metrics, **throughput))
        trainer.save_state()
        logger.info(
            "training throughput: %s real tokens/s, %s padded tokens/s (%s%% padding), %.1f s of training",
            throughput["train_real_tokens_per_second"], throughput["train_padded_tokens_per_second"],
            None if throughput["padding_fraction"] is None else round(100 * throughput["padding_fraction"], 1),
            throughput["train_seconds"],
        )

        # ---- the weights kept: the best checkpoint or the average, then the logit adjustment
        averaged = average_saved_checkpoints(trainer) if training_args.average_checkpoints else None
        averaged_dev = trainer.evaluate() if averaged and dev_dataset is not None else None  # adjusted metrics
        adjustment = None
        if training_args.logit_adjustment == "dev" and dev_dataset is not None:
            adjustment = adjust_logits_on_dev(trainer, dev_dataset, prior)
        trainer.compute_metrics = compute_metrics  # test: plain metrics of the saved model, nothing fitted on it

        # ---- save the model folder
        model_dir = os.path.join(output_dir, "model")
        if writer:
            save_model_dir(trainer.model, tokenizer, model_dir, max_length=data_args.max_length,  # the truncation used
                           extra_json={"training_args.json": all_args})

        # ---- report: dev metrics of the kept model (from the log when available), then test
        results = {"output_dir": output_dir, "model_dir": model_dir, "data_dir": data_dir}
        best = trainer.state.best_model_checkpoint
        if dev_dataset is not None:
            step = int(best.rstrip("/").rsplit("-", 1)[-1]) if training_args.load_best_model_at_end and best else None
            dev = averaged_dev or _eval_entry(trainer.state.log_history, step) or trainer.evaluate()
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
            write_json_record(os.path.join(output_dir, "test_results.json"), results)
        logger.info(
            "dev macro-F1 %s accuracy %s | test macro-F1 %s accuracy %s | model in %s",
            *(_rounded(results.get(k)) for k in ("dev_macro_f1", "dev_accuracy", "test_macro_f1", "test_accuracy")),
            model_dir,
        )
    close_processes(training_args)
    return results


def console_main() -> int:
    """The `fastformer-train` command (pyproject.toml): `main` with one-line errors, as `python train.py`."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(console_main())
