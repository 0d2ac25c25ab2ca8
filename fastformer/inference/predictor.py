"""`Predictor`: texts -> label probabilities (and star ratings for a rating model), behind predict.py, evaluate.py
and serve.py.

It runs an export (Paddle Inference) or a trained model folder (dygraph) in a fixed precision, checking the weight
files before loading them; texts are batched by length and results come back in input order (docs/inference.md).
"""

from __future__ import annotations

import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..configuration import FastformerConfig
from ..encoding import check_max_length, count_truncated, encode_texts, pad_batch
from ..labels import is_rating_model, label_to_stars
from ..model_folder import check_model_dir, load_model_dir, load_tokenizer, paddlenlp_warnings_only
from ..weight_files import check_export_files
from .folders import (BACKENDS, MANIFEST_FILE, MODEL_PREFIX, ONNX_FILE, check_manifest_checksums, detect_backend,
                      find_model_files, fused_program, read_manifest)
from .runners import DynamicRunner, InferenceRunner, OrtRunner, check_device

__all__ = ["Predictor", "NonFiniteOutputError", "FIXED_PRECISIONS", "PAD_MULTIPLE", "SMALL_BATCH_ROWS", "bucket_rows",
           "length_groups", "softmax", "check_onnx_file", "check_fused_files"]

FIXED_PRECISIONS = ("fp32", "bf16", "int8")
# Paddle Inference with oneDNN keeps kernels for every input shape it has run: lengths are padded to a multiple of 16
# and batches to a power of two rows (`bucket_rows`), so few shapes ever occur (docs/inference.md, "Batching").
PAD_MULTIPLE = 16
# batches of at most this many rows run on the small-batch engine where one is given (loader: the engine fastest on
# single reviews on this CPU); measured crossover on the project's CPUs: docs/inference_speed.md
SMALL_BATCH_ROWS = 4
# The cost of a forward pass in padded tokens, for `length_groups`: FORWARD_COST once per pass and ROW_COST per row on
# top of the row's padded length. A hand fit to Paddle Inference's forward times on the project's 2-core machine (bf16,
# 2 threads, rows 1-64 x lengths 16-512): about 2.4 ms a pass, 0.12 ms a row and 6 us a padded token.
FORWARD_COST = 400
ROW_COST = 20
MOSTLY_UNKNOWN = 0.5  # a result warns when more than this share of its tokens is [UNK]


class NonFiniteOutputError(RuntimeError):
    """The model gave NaN or infinite logits: its weights are damaged (or it diverged in training).

    `indices`: the positions, in the texts given, of the texts whose logits are not finite."""

    def __init__(self, model_dir: str, indices: Sequence[int], total: int):
        self.indices = list(indices)
        shown = ", ".join(map(str, self.indices[:10])) + (" ..." if len(self.indices) > 10 else "")
        super().__init__(
            f"the model in {model_dir!r} gave non-finite logits (NaN or Inf) for {len(self.indices)} of {total} "
            f"text(s) (indices {shown}): its weights are damaged or the model diverged; no rating was given"
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, float32."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def bucket_rows(n: int, batch_size: int) -> int:
    """Rows a batch of `n` texts is padded to: the next power of two, at most `batch_size`."""
    return min(batch_size, 1 << (n - 1).bit_length()) if n > 0 else 0


def length_groups(lengths: Sequence[int], batch_size: int) -> List[Tuple[int, int]]:
    """How texts of `lengths` (sorted, shortest first) are split into forward passes: (start, stop) slices of at
    most `batch_size` texts, the split of least cost in padded tokens (each pass: FORWARD_COST, and per row of
    `bucket_rows` its length padded to PAD_MULTIPLE plus ROW_COST). A few long texts among short ones get passes of
    their own instead of making every row as long as theirs."""
    n = len(lengths)
    sizes = sorted({bucket_rows(k, batch_size) for k in range(1, batch_size + 1)})
    best, cut = [0] + [0] * n, [0] * (n + 1)
    for stop in range(1, n + 1):
        padded = -(-max(1, lengths[stop - 1]) // PAD_MULTIPLE) * PAD_MULTIPLE + ROW_COST
        best[stop] = -1
        # for rows r, a pass of the most texts (r, or all so far) costs least: `best` grows with the texts covered
        for size in sizes:
            take = min(size, stop)
            cost = best[stop - take] + FORWARD_COST + bucket_rows(take, batch_size) * padded
            if best[stop] < 0 or cost < best[stop]:
                best[stop], cut[stop] = cost, stop - take
            if take == stop:
                break
    groups, stop = [], n
    while stop:
        groups.append((cut[stop], stop))
        stop = cut[stop]
    return groups[::-1]


def check_onnx_file(model_dir: str, manifest: Optional[dict], precision: str = "fp32") -> str:
    """The export's model.onnx (int8: model.int8.onnx), checked against the SHA-256 its manifest records; ValueError
    saying how to get one."""
    from ..fileio import check_checksums

    onnx = (manifest or {}).get("onnx") or {}
    record = (onnx.get("int8") or {}) if precision == "int8" else onnx
    name = record.get("file") or (f"{MODEL_PREFIX}.int8.onnx" if precision == "int8" else ONNX_FILE)
    path = os.path.join(model_dir, os.path.basename(name))
    if not os.path.isfile(path):
        why = f": {record['reason']}" if record.get("reason") else ""
        raise ValueError(f"{model_dir!r} has no {os.path.basename(name)} for the onnxruntime backend (export it with "
                         f"export_model.py --onnx{' where onnxruntime is installed' if precision == 'int8' else ''}"
                         f"{why})")
    if isinstance(record.get("sha256"), str):
        check_checksums(model_dir, {os.path.basename(name): record["sha256"]}, source=MANIFEST_FILE)
    return path


def check_fused_files(model_dir: str, manifest: Optional[dict], precision: str = "fp32") -> Tuple[str, str]:
    """The export's fused program (model.fused.json, .pdiparams; model.fused.bf16.* for bf16), checked against the
    SHA-256 its manifest records; ValueError saying why there is none."""
    from ..fileio import check_checksums

    record, why = fused_program(manifest, precision)
    if record is None:
        raise ValueError(f"{model_dir!r} has no fused{' bf16' if precision == 'bf16' else ''} program for the fused "
                         f"backend ({why})")
    files = (os.path.basename(record["model_file"]), os.path.basename(record["params_file"]))
    check_checksums(model_dir, {name: record["sha256"][name] for name in files}, source=MANIFEST_FILE)
    return files


class Predictor:
    """Label predictions (and star ratings) from raw texts, in the precision it is given (`loader.load_predictor` decides
    "auto" and runs the bf16 quality gate).

    Args:
        model_dir: an export folder (export_model.py) or a trained model folder (train.py).
        backend: "inference" (or "paddle": Paddle Inference), "onnxruntime" (the export's model.onnx), "dynamic" or
            "auto" (inference or dynamic, from the folder's contents; `loader.load_predictor` also weighs onnxruntime).
        device: "cpu" or "gpu" (a clear error when Paddle has no CUDA or no GPU is visible).
        num_threads: CPU math threads (default: every core).
        batch_size: the most texts per forward pass (the length-sorted texts are split by `length_groups`).
        max_length: tokens kept per text (default: the folder's truncation length); longer texts say so.
        enable_mkldnn: oneDNN for Paddle Inference on CPU.
        allow_pickle: also load a trained model folder with pickle-format weights (`model_folder.ALLOW_PICKLE_HELP`).
        precision: "fp32" or "bf16" (oneDNN on CPU, an export only); `precision_note` says why, when given.
        small_batch: (backend, precision, note) of a second engine for batches of at most `SMALL_BATCH_ROWS` rows
            (an export only; `loader.load_predictor` gives the one fastest on single reviews where it is not the main
            one).
    """

    def __init__(
        self,
        model_dir: str,
        backend: str = "auto",
        device: str = "cpu",
        num_threads: Optional[int] = None,
        batch_size: int = 64,
        max_length: Optional[int] = None,
        enable_mkldnn: bool = True,
        allow_pickle: bool = False,
        precision: str = "fp32",
        precision_note: Optional[str] = None,
        small_batch: Optional[Tuple[str, str, Optional[str]]] = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if precision not in FIXED_PRECISIONS:
            raise ValueError(f"Predictor runs a fixed precision {FIXED_PRECISIONS}, got {precision!r} "
                             "(fastformer.inference.loader.load_predictor chooses one for 'auto')")
        check_device(device)
        backend = "inference" if backend == "paddle" else backend
        if backend == "auto":
            backend = detect_backend(model_dir)
        if backend in ("onnxruntime", "fused") and device != "cpu":
            raise ValueError(f"the {backend} backend runs on CPU, not device {device!r}")
        if precision == "bf16" and not (backend == "fused" or (backend == "inference" and device == "cpu"
                                                               and enable_mkldnn)):
            raise ValueError("bf16 runs an export on CPU: Paddle Inference with oneDNN (backend inference, oneDNN on) "
                             "or the fused program (backend fused)")
        if backend == "fused" and precision not in ("fp32", "bf16"):
            raise ValueError(f"the fused backend runs fp32 or bf16, not {precision}")
        if precision == "int8" and backend != "onnxruntime":
            raise ValueError(f"int8 runs on the onnxruntime backend (model.int8.onnx), not {backend}")
        self.model_dir = model_dir
        self.backend = backend
        self.device = device
        self.batch_size = int(batch_size)
        self._lock = threading.Lock()  # Paddle Inference predictors are not thread-safe (serve.py's thread pool)
        self.precision, self.precision_note = precision, precision_note
        self._small_runner, self.small_batch = None, None
        if backend in ("inference", "onnxruntime", "fused"):
            self.manifest = read_manifest(model_dir) if os.path.isdir(model_dir) else None
            model_file, params_file = find_model_files(model_dir, self.manifest)
            check_model_dir(model_dir, required=(MANIFEST_FILE, "config.json", model_file, params_file))
            check_manifest_checksums(model_dir, self.manifest)
            check_export_files(model_dir, model_file, params_file, self.manifest)  # config values, finite weights
            with paddlenlp_warnings_only():  # no INFO line per file read
                config = FastformerConfig.from_pretrained(model_dir)
            self.tokenizer = load_tokenizer(model_dir, config)
            self._runner = self._export_runner(backend, precision, model_file, params_file, device, num_threads,
                                               enable_mkldnn)
            if small_batch is not None:
                self._small_runner = self._export_runner(small_batch[0], small_batch[1], model_file, params_file,
                                                         device, num_threads, enable_mkldnn)
                self.small_batch = {"backend": small_batch[0], "precision": small_batch[1],
                                    "max_rows": SMALL_BATCH_ROWS, "note": small_batch[2]}
            default_length = int(self.manifest.get("max_length") or self.tokenizer.model_max_length)
        else:
            self.manifest = None
            model, self.tokenizer = load_model_dir(model_dir, allow_pickle=allow_pickle)
            config = model.config
            self._runner = DynamicRunner(model, device=device, num_threads=num_threads)
            default_length = self.tokenizer.model_max_length
        self.config = config
        self.enable_mkldnn = getattr(self._runner, "enable_mkldnn", False)
        self.max_length = check_max_length(max_length or default_length, config)
        self._labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        if self.manifest and self.manifest.get("labels") and list(self.manifest["labels"]) != self._labels:
            raise ValueError(f"{model_dir!r}: the labels of {MANIFEST_FILE} ({self.manifest['labels']}) and "
                             f"config.json ({self._labels}) differ")
        self._ratings = label_to_stars(self._labels) if is_rating_model(self._labels) else None

    def _export_runner(self, backend: str, precision: str, model_file: str, params_file: str, device: str,
                       num_threads: Optional[int], enable_mkldnn: bool):
        if backend == "onnxruntime":
            return OrtRunner(check_onnx_file(self.model_dir, self.manifest, precision), num_threads=num_threads,
                             precision=precision)
        if backend == "fused":
            model_file, params_file = check_fused_files(self.model_dir, self.manifest, precision)
        return InferenceRunner(os.path.join(self.model_dir, model_file), os.path.join(self.model_dir, params_file),
                               device=device, num_threads=num_threads, enable_mkldnn=enable_mkldnn,
                               precision=precision, fused=backend == "fused")

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def labels(self) -> List[str]:
        """Label names in class-id order ("1" .. "5": star ratings)."""
        return list(self._labels)

    @property
    def rating_model(self) -> bool:
        """Whether the labels are the star ratings "1".."5": results then also give `rating`, the number of stars."""
        return self._ratings is not None

    @property
    def num_labels(self) -> int:
        return len(self._labels)

    @property
    def dynamic_model(self):
        """The dygraph model of a trained model folder (None for an export)."""
        return getattr(self._runner, "model", None) if self.backend == "dynamic" else None

    @property
    def lock(self) -> threading.Lock:
        """Held during each forward pass: whoever else runs the same model takes it too."""
        return self._lock

    def info(self) -> Dict[str, object]:
        return {
            "backend": self.backend,
            "device": self.device,
            "onednn": self.enable_mkldnn,
            "precision": self.precision,
            "precision_note": self.precision_note,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "small_batches": self.small_batch,
            "labels": self.labels,
        }

    # ------------------------------------------------------------------------------------------------ internals
    def _encode(self, texts: Sequence[str]) -> Tuple[List[List[int]], List[int]]:
        """Token ids truncated to max_length, and the number of tokens dropped from each text."""
        ids = encode_texts(self.tokenizer, texts, self.max_length)
        truncated = [0] * len(ids)
        for i, seq in enumerate(ids):
            if len(seq) >= self.max_length:  # only a text at the limit can have lost tokens
                truncated[i] = count_truncated(self.tokenizer, texts[i], self.max_length) or 0
        return ids, truncated

    def _finite(self, logits: np.ndarray, positions: Sequence[int]) -> np.ndarray:
        """`logits`, or NonFiniteOutputError naming the `positions` (input indices) of rows that are not finite."""
        bad = np.flatnonzero(~np.isfinite(logits).all(axis=-1))
        if bad.size:
            positions = list(positions)
            raise NonFiniteOutputError(self.model_dir, [positions[i] for i in bad], len(positions))
        return logits

    def _logits(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits [N, C] of id lists, batched by length (sorted, split by `length_groups`), in input order. Batches
        are padded to few shapes (lengths: a multiple of PAD_MULTIPLE; rows: `bucket_rows`, copies of the last text,
        their logits dropped), except for a runner that skips padding (the fused operator): runs of `batch_size`."""
        out = np.zeros((len(ids), self.num_labels), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad_id = self.tokenizer.pad_token_id
        unpadded = getattr(self._runner, "skips_padding", False)
        groups = ([(start, min(start + self.batch_size, len(ids))) for start in range(0, len(ids), self.batch_size)]
                  if unpadded else length_groups([len(ids[i]) for i in order], self.batch_size))
        for start, stop in groups:
            rows = order[start:stop]
            batch = [ids[i] for i in rows]
            if not unpadded:
                batch += batch[-1:] * (bucket_rows(len(batch), self.batch_size) - len(batch))
            input_ids, attention_mask = pad_batch(batch, pad_id, 1 if unpadded else PAD_MULTIPLE)
            small = self._small_runner is not None and len(batch) <= SMALL_BATCH_ROWS
            with self._lock:
                logits = (self._small_runner if small else self._runner).run(input_ids, attention_mask)
            out[rows] = logits[: len(rows)]
        return out

    # -------------------------------------------------------------------------------------------------- public
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax probabilities, float32 [len(texts), num_labels], in input order.

        Every text must be a non-blank string (ValueError naming the first bad ones otherwise); `predict` reports
        bad texts per item instead.
        """
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"{len(bad)} text(s) are empty, blank or not strings (indices {bad[:10]}"
                             f"{' ...' if len(bad) > 10 else ''})")
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        ids, _ = self._encode(texts)
        return softmax(self._finite(self._logits(ids), range(len(texts))))

    def predict(self, texts: Sequence[str]) -> List[Dict[str, object]]:
        """One result per text, in input order:

        {"rating": stars (int; a rating model only), "label": name, "probabilities": {label: p},
        "truncated_tokens": tokens dropped (0 when none), "unk_share": share of the tokens read that are [UNK] (0..1),
        "warning": None, or a message when more than half of them are [UNK], "error": None}; a text that is not a
        string, empty, blank or without any token gets {"rating": None (a rating model only), "label": None,
        "probabilities": None, "truncated_tokens": 0, "unk_share": None, "warning": None, "error": message} and the
        others are still predicted. Non-finite logits raise `NonFiniteOutputError` (no result is made up from them).
        """
        texts = list(texts)
        results: List[Optional[Dict[str, object]]] = [None] * len(texts)
        good = []
        for i, text in enumerate(texts):
            error = None
            if not isinstance(text, str):
                error = f"text must be a string, got {type(text).__name__}"
            elif not text.strip():
                error = "empty text" if not text else "text is only whitespace"
            if error:
                results[i] = self._error(error)
            else:
                good.append(i)
        if good:
            ids, truncated = self._encode([texts[i] for i in good])
            empty = {k for k, seq in enumerate(ids) if not seq}
            for k in empty:  # e.g. only characters the tokenizer drops
                results[good[k]] = self._error("text has no tokens")
            keep = [k for k in range(len(good)) if k not in empty]
            logits = self._logits([ids[k] for k in keep]) if keep else np.zeros((0, self.num_labels))
            probs = softmax(self._finite(logits, [good[k] for k in keep]))
            unk = self.tokenizer.unk_token_id
            for row, k in enumerate(keep):
                p = probs[row]
                best = int(p.argmax())
                unk_share = sum(i == unk for i in ids[k]) / len(ids[k])
                results[good[k]] = {
                    **({"rating": self._ratings[best]} if self._ratings else {}),
                    "label": self._labels[best],
                    "probabilities": {name: float(p[c]) for c, name in enumerate(self._labels)},
                    "truncated_tokens": int(truncated[k]),
                    "unk_share": round(unk_share, 4),
                    "warning": (f"{unk_share:.0%} of the tokens are unknown to the model's vocabulary: the "
                                f"{'rating' if self._ratings else 'prediction'} is unreliable"
                                if unk_share > MOSTLY_UNKNOWN else None),
                    "error": None,
                }
        return results  # type: ignore[return-value]

    def _error(self, message: str) -> Dict[str, object]:
        return {**({"rating": None} if self._ratings else {}), "label": None, "probabilities": None,
                "truncated_tokens": 0, "unk_share": None, "warning": None, "error": message}

    def __repr__(self) -> str:
        return (f"Predictor({self.model_dir!r}, backend={self.backend!r}, device={self.device!r}, "
                f"precision={self.precision!r}, max_length={self.max_length}, batch_size={self.batch_size})")
