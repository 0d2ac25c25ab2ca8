"""`Predictor`: review texts -> star-rating probabilities, behind predict.py, evaluate.py and serve.py.

Two backends read two kinds of folder:

* "inference": an export folder written by `export_model.py` (`manifest.json`, `model.json` + `model.pdiparams`
  or a legacy `model.pdmodel`, `config.json`, tokenizer), run by Paddle Inference; on CPU with oneDNN by default,
  the fast path.
* "dynamic": a trained model folder (`model_folder.save_model_dir` / train.py: `config.json`, `model.safetensors`,
  tokenizer), run by the Paddle dygraph model; a folder with the older pickle-format `model_state.pdparams` only
  with `allow_pickle` (`--allow_pickle`).

Weight files are checked before they are loaded: the SHA-256 recorded in the export's manifest (`sha256`) or in the
model folder's `checksums.json` (a mismatch is an error naming the file), then `config.json` against the allowed
values and the weights' shapes, and every weight finite (`weight_files`).

"auto" (the default) picks "inference" when the folder has `manifest.json`, "dynamic" when it has
model weights. `precision` ("auto", "fp32", "bf16"; `fastformer.precision`) runs Paddle Inference in
oneDNN bfloat16 where the CPU has it and the export passed its quality gate against fp32, else in fp32. Texts are
tokenized, truncated to `max_length`, sorted by length and batched (little padding), and the results are returned
in input order. `max_length` defaults to the folder's truncation length:
the export's manifest, else the tokenizer's `model_max_length` (tokenizer_config.json; the training max_length
recorded by `model_folder.save_model_dir`), else the model's max_position_embeddings.

    predictor = Predictor("output/demo/export")
    predictor.predict(["Great sound.", "Broke after a week."])   # [{"rating": 5, "label": "5", ...}, ...]
    predictor.predict_proba(texts)                                 # float32 [N, num_labels]

Outputs are checked: logits that are not finite (NaN/Inf: damaged weights) raise `NonFiniteOutputError` instead of
becoming a rating. Each result gives the share of its tokens the vocabulary does not know (`unk_share`) and a
`warning` when more than half are unknown (another language, emoji only): such a rating means little.

The scripts share the command-line flags: `add_predictor_args(parser)`, then `Predictor.from_args(args)`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import precision as precisions
from . import encoding, labels, model_folder
from .fileio import CHECKSUMS_FILE
from .weight_files import check_export_files

__all__ = [
    "Predictor",
    "NonFiniteOutputError",
    "add_predictor_args",
    "add_allow_pickle_arg",
    "check_manifest_checksums",
    "InferenceRunner",
    "DynamicRunner",
    "MANIFEST_FILE",
    "MODEL_PREFIX",
    "INPUT_NAMES",
    "BACKENDS",
    "find_model_files",
    "bucket_rows",
    "detect_backend",
    "softmax",
]

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
MODEL_PREFIX = "model"
INPUT_NAMES = ("input_ids", "attention_mask")
BACKENDS = ("auto", "inference", "dynamic")
DEVICES = ("cpu", "gpu")
# Paddle Inference with oneDNN keeps kernels and memory for every input shape it has run (the RSS of a server grew
# by hundreds of MB over all batch x length shapes). Lengths are padded to a multiple of 16 and batches to a power
# of two rows (`bucket_rows`), so at most ceil(max_length / 16) x (log2(batch_size) + 1) shapes ever occur.
# (Config.set_mkldnn_cache_capacity evicts instead, but then re-creates the kernels whenever the shape changes.)
PAD_MULTIPLE = 16
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


def _read_manifest(path: str) -> Optional[dict]:
    file = os.path.join(path, MANIFEST_FILE)
    if not os.path.isfile(file):
        return None
    try:
        with open(file, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file!r} is not a readable JSON manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{file!r} is not a JSON object")
    return manifest


def find_model_files(path: str, manifest: Optional[dict] = None) -> Tuple[str, str]:
    """(model file, params file) names of an export folder: the manifest's, else `model.json` (Paddle 3, PIR)
    when it exists, else the legacy `model.pdmodel`. The files need not exist (`check_model_dir` says so)."""
    manifest = manifest or {}
    if manifest.get("model_file") and manifest.get("params_file"):
        return str(manifest["model_file"]), str(manifest["params_file"])
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(os.path.join(path, MODEL_PREFIX + ext)):
            return MODEL_PREFIX + ext, MODEL_PREFIX + ".pdiparams"
    return MODEL_PREFIX + ".json", MODEL_PREFIX + ".pdiparams"


def model_folder_marker(folder: str) -> Optional[str]:
    """The file that makes `folder` a model, checkpoint or export folder (weights, manifest or checksums), if any."""
    names = (model_folder.WEIGHTS_FILE, model_folder.PICKLE_WEIGHTS_FILE, MODEL_PREFIX + ".pdiparams", MANIFEST_FILE, CHECKSUMS_FILE)
    return next((name for name in names if os.path.isfile(os.path.join(folder, name))), None)


def detect_backend(path: str) -> str:
    """"inference" for an export folder (manifest.json), "dynamic" for a trained model folder."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder {path!r} does not exist")
    if os.path.isfile(os.path.join(path, MANIFEST_FILE)):
        return "inference"
    if any(os.path.isfile(os.path.join(path, name)) for name in (model_folder.WEIGHTS_FILE, model_folder.PICKLE_WEIGHTS_FILE)):
        return "dynamic"
    if any(os.path.isfile(os.path.join(path, MODEL_PREFIX + ext)) for ext in (".json", ".pdmodel")):
        return "inference"  # an export without its manifest: check_model_dir names what is missing
    raise FileNotFoundError(
        f"model folder {path!r} is neither an export ({MANIFEST_FILE}, from export_model.py) nor a trained model "
        f"({model_folder.MODEL_FILES[-1]}, from train.py); it holds {sorted(os.listdir(path))}"
    )


def _check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "gpu":
        import paddle

        if not paddle.device.is_compiled_with_cuda():
            raise RuntimeError(
                f"device='gpu' was asked for, but this Paddle ({paddle.__version__}) is a CPU-only build: install "
                "paddlepaddle-gpu or use device='cpu'"
            )
        if paddle.device.cuda.device_count() < 1:
            raise RuntimeError("device='gpu' was asked for, but no CUDA device is visible; use device='cpu'")
    return device


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_predictor_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `Predictor` flags shared by predict.py, evaluate.py and serve.py (read back by `Predictor.from_args`,
    with the script's own --model_dir)."""
    group = parser.add_argument_group("predictor")
    group.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="auto: inference for an export folder (manifest.json), dynamic for a trained model folder")
    group.add_argument("--device", choices=DEVICES, default="cpu")
    group.add_argument("--num_threads", type=_positive_int, default=None, help="CPU threads (default: every core)")
    group.add_argument("--batch_size", type=_positive_int, default=64, help="texts per forward pass")
    group.add_argument("--max_length", type=_positive_int, default=None,
                       help="tokens kept per review (default: the model folder's: the training max_length, or the "
                       "export's)")
    group.add_argument("--no_onednn", action="store_true", help="Paddle Inference on CPU without oneDNN")
    add_allow_pickle_arg(group)
    group.add_argument("--precision", type=precisions.precision_arg, default="auto", metavar="{auto,fp32,bf16}",
                       help="auto: bf16 where the CPU has avx512_bf16/AMX and the export passed the quality gate "
                       "against fp32 on the dev split, else fp32; bf16: the same, with a warning when it falls back; "
                       "fp32. int8 is not available (Paddle 3.3 Inference has no CPU int8 path for this model)")
    group.add_argument("--precision_data", default=None,
                       help="dev split (JSON lines {text, label}) for the bf16 quality gate when the export has not "
                       "been checked yet (default: data/dev.jsonl next to the model folder)")
    return parser


def add_allow_pickle_arg(parser) -> None:
    """`--allow_pickle` (see `model_folder.ALLOW_PICKLE_HELP`), shared by the scripts that load a trained model folder."""
    parser.add_argument("--allow_pickle", action="store_true", help=model_folder.ALLOW_PICKLE_HELP)


def check_manifest_checksums(path: str, manifest: dict) -> None:
    """The export's weight files against the SHA-256 its manifest records (`fileio.ChecksumError` on a mismatch);
    an older manifest without them loads with a warning."""
    from .fileio import check_checksums

    digests = manifest.get("sha256")
    if not isinstance(digests, dict) or not digests:
        logger.warning(
            "%s: no SHA-256 of the weight files recorded (an older export), their integrity is not checked; export "
            "the model again to record them", os.path.join(path, MANIFEST_FILE))
        return
    check_checksums(path, digests, source=MANIFEST_FILE)


class InferenceRunner:
    """A Paddle Inference predictor of an exported model: (input_ids, attention_mask) -> logits (numpy)."""

    def __init__(
        self,
        model_file: str,
        params_file: str,
        device: str = "cpu",
        num_threads: Optional[int] = None,
        enable_mkldnn: bool = True,
        gpu_id: int = 0,
        mkldnn_cache_capacity: int = 0,
        precision: str = "fp32",
    ):
        from paddle import inference

        _check_device(device)
        config = inference.Config(model_file, params_file)
        if device == "gpu":
            config.enable_use_gpu(256, gpu_id)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(int(num_threads or os.cpu_count() or 1))
            if enable_mkldnn:
                config.enable_mkldnn()
                if mkldnn_cache_capacity:
                    config.set_mkldnn_cache_capacity(mkldnn_cache_capacity)
                if precision == "bf16":  # callers check the CPU first (precision.choose_precision)
                    config.enable_mkldnn_bfloat16()
            else:
                config.disable_mkldnn()
        config.switch_ir_optim(True)
        config.disable_glog_info()
        self.device = device
        self.enable_mkldnn = bool(enable_mkldnn and device == "cpu")
        self.precision = precision if self.enable_mkldnn else "fp32"
        try:
            self._predictor = inference.create_predictor(config)
        except (RuntimeError, ValueError, OSError) as exc:  # Paddle's many-line message: its first line
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ValueError(f"Paddle Inference cannot load {model_file!r} + {params_file!r} (damaged or not an "
                             f"export of this Paddle): {first}") from exc
        self.input_names = list(self._predictor.get_input_names())
        unknown = set(self.input_names) - set(INPUT_NAMES)
        if unknown:
            raise ValueError(f"{model_file!r} takes inputs {self.input_names}, expected {list(INPUT_NAMES)}")
        self.output_name = self._predictor.get_output_names()[0]
        self._inputs = {name: self._predictor.get_input_handle(name) for name in self.input_names}
        self._output = self._predictor.get_output_handle(self.output_name)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask}
        for name, handle in self._inputs.items():
            array = np.ascontiguousarray(arrays[name], dtype=np.int64)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        self._predictor.run()
        return self._output.copy_to_cpu()


class DynamicRunner:
    """The dygraph model of a trained model folder: (input_ids, attention_mask) -> logits (numpy)."""

    def __init__(self, model, device: str = "cpu", num_threads: Optional[int] = None):
        import paddle

        _check_device(device)
        if num_threads:
            try:
                paddle.base.core.set_num_threads(int(num_threads))
            except AttributeError:  # pragma: no cover - older Paddle
                pass
        self._paddle = paddle
        self._place = paddle.CUDAPlace(0) if device == "gpu" else paddle.CPUPlace()
        if device == "gpu":
            model.to(device="gpu")
        model.eval()
        self.model = model
        self.device = device

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        paddle = self._paddle
        with paddle.no_grad():
            logits = self.model(
                paddle.to_tensor(input_ids, place=self._place),
                paddle.to_tensor(attention_mask, place=self._place),
                return_dict=False,
            )[0]
        return logits.numpy()


class Predictor:
    """Star-rating predictions from raw review texts, through Paddle Inference or the dygraph model.

    Args:
        model_dir: an export folder (export_model.py) or a trained model folder (train.py).
        backend: "inference", "dynamic" or "auto" (from the folder's contents).
        device: "cpu" or "gpu" (a clear error when Paddle has no CUDA or no GPU is visible).
        num_threads: CPU math threads (default: every core).
        batch_size: texts per forward pass.
        max_length: tokens kept per text (default: the export's max_length, else the folder's recorded
            truncation length, tokenizer_config.json's model_max_length, else the model's
            max_position_embeddings); longer texts are truncated and say so (`truncated_tokens`).
        enable_mkldnn: oneDNN for Paddle Inference on CPU.
        allow_pickle: also load a trained model folder with pickle-format weights (`model_folder.ALLOW_PICKLE_HELP`).
        precision: "auto", "fp32" or "bf16" (`fastformer.precision`); `precision` / `precision_note` say what runs
            and why.
        precision_data: the dev split for a first-use quality gate (default: data/dev.jsonl next to model_dir).
        quality_gate: False runs a requested bf16 unchecked (benchmarks).
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
        precision: str = "auto",
        precision_data: Optional[str] = None,
        quality_gate: bool = True,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        precisions.check_precision(precision)
        _check_device(device)
        if backend == "auto":
            backend = detect_backend(model_dir)
        self.model_dir = model_dir
        self.backend = backend
        self.device = device
        self.batch_size = int(batch_size)
        self._lock = threading.Lock()  # Paddle Inference predictors are not thread-safe (serve.py's thread pool)

        from .configuration import FastformerConfig

        if backend == "inference":
            self.manifest = _read_manifest(model_dir) if os.path.isdir(model_dir) else None
            model_file, params_file = find_model_files(model_dir, self.manifest)
            model_folder.check_model_dir(model_dir, required=(MANIFEST_FILE, "config.json", model_file, params_file))
            check_manifest_checksums(model_dir, self.manifest)
            check_export_files(model_dir, model_file, params_file, self.manifest)  # config values, finite weights
            config = FastformerConfig.from_pretrained(model_dir)
            self.tokenizer = model_folder.load_tokenizer(model_dir, config)
            self.precision, self.precision_note = precisions.choose_precision(
                precision, model_dir, self.manifest, device=device, onednn=enable_mkldnn, data_file=precision_data,
                quality_gate=quality_gate, num_threads=num_threads, batch_size=batch_size, max_length=max_length,
            )
            self._runner = InferenceRunner(
                os.path.join(model_dir, model_file), os.path.join(model_dir, params_file),
                device=device, num_threads=num_threads, enable_mkldnn=enable_mkldnn, precision=self.precision,
            )
            default_length = int(self.manifest.get("max_length") or self.tokenizer.model_max_length)
        else:
            self.manifest = None
            model, self.tokenizer = model_folder.load_model_dir(model_dir, allow_pickle=allow_pickle)
            config = model.config
            self._runner = DynamicRunner(model, device=device, num_threads=num_threads)
            self.precision, self.precision_note = precisions.choose_precision(precision, model_dir, None, "dynamic")
            default_length = self.tokenizer.model_max_length
        self.config = config
        self.enable_mkldnn = getattr(self._runner, "enable_mkldnn", False)
        self.max_length = encoding.check_max_length(max_length or default_length, config)
        self._labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        if self.manifest and self.manifest.get("labels") and list(self.manifest["labels"]) != self._labels:
            raise ValueError(f"{model_dir!r}: the labels of {MANIFEST_FILE} ({self.manifest['labels']}) and "
                             f"config.json ({self._labels}) differ")
        self._ratings = labels.label_to_stars(self._labels)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Predictor":
        """A predictor of `args.model_dir` with the flags of `add_predictor_args`; a folder or flag that cannot be
        used is a `UserError` (one line from the scripts) or FileNotFoundError."""
        from .cli import UserError

        try:
            return cls(args.model_dir, backend=args.backend, device=args.device, num_threads=args.num_threads,
                       batch_size=args.batch_size, max_length=args.max_length, enable_mkldnn=not args.no_onednn,
                       allow_pickle=getattr(args, "allow_pickle", False),
                       precision=args.precision, precision_data=args.precision_data)
        except UserError:
            raise
        except (ValueError, RuntimeError) as exc:
            raise UserError(str(exc)) from exc

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def labels(self) -> List[str]:
        """Label names in class-id order ("1" .. "5": star ratings)."""
        return list(self._labels)

    @property
    def num_labels(self) -> int:
        return len(self._labels)

    def info(self) -> Dict[str, object]:
        return {
            "backend": self.backend,
            "device": self.device,
            "onednn": self.enable_mkldnn,
            "precision": self.precision,
            "precision_note": self.precision_note,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "labels": self.labels,
        }

    # ------------------------------------------------------------------------------------------------ internals
    def _encode(self, texts: Sequence[str]) -> Tuple[List[List[int]], List[int]]:
        """Token ids truncated to max_length, and the number of tokens dropped from each text."""
        ids = encoding.encode_texts(self.tokenizer, texts, self.max_length)
        truncated = [0] * len(ids)
        for i, seq in enumerate(ids):
            if len(seq) >= self.max_length:  # only a text at the limit can have lost tokens
                truncated[i] = encoding.count_truncated(self.tokenizer, texts[i], self.max_length) or 0
        return ids, truncated

    def _finite(self, logits: np.ndarray, positions: Sequence[int]) -> np.ndarray:
        """`logits`, or NonFiniteOutputError naming the `positions` (input indices) of rows that are not finite."""
        bad = np.flatnonzero(~np.isfinite(logits).all(axis=-1))
        if bad.size:
            positions = list(positions)
            raise NonFiniteOutputError(self.model_dir, [positions[i] for i in bad], len(positions))
        return logits

    def _logits(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits [N, C] of id lists, batched by length (sorted), in input order. Batches are padded to few shapes
        (lengths: a multiple of PAD_MULTIPLE; rows: `bucket_rows`, copies of the last text, their logits dropped)."""
        out = np.zeros((len(ids), self.num_labels), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = [ids[i] for i in rows]
            batch += batch[-1:] * (bucket_rows(len(batch), self.batch_size) - len(batch))
            input_ids, attention_mask = encoding.pad_batch(batch, pad_id, PAD_MULTIPLE)
            with self._lock:
                logits = self._runner.run(input_ids, attention_mask)
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

        {"rating": stars (int), "label": name, "probabilities": {label: p}, "truncated_tokens": tokens dropped
        (0 when none), "unk_share": share of the tokens read that are [UNK] (0..1), "warning": None, or a message
        when more than half of them are [UNK], "error": None}; a text that is not a string, empty, blank or without
        any token gets {"rating": None, "label": None, "probabilities": None, "truncated_tokens": 0,
        "unk_share": None, "warning": None, "error": message} and the others are still predicted. Non-finite
        logits raise `NonFiniteOutputError` (no result is made up from them).
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
                    "rating": self._ratings[best],
                    "label": self._labels[best],
                    "probabilities": {name: float(p[c]) for c, name in enumerate(self._labels)},
                    "truncated_tokens": int(truncated[k]),
                    "unk_share": round(unk_share, 4),
                    "warning": (f"{unk_share:.0%} of the tokens are unknown to the model's vocabulary: the rating "
                                "is unreliable" if unk_share > MOSTLY_UNKNOWN else None),
                    "error": None,
                }
        return results  # type: ignore[return-value]

    @staticmethod
    def _error(message: str) -> Dict[str, object]:
        return {"rating": None, "label": None, "probabilities": None, "truncated_tokens": 0, "unk_share": None,
                "warning": None, "error": message}

    def __repr__(self) -> str:
        return (f"Predictor({self.model_dir!r}, backend={self.backend!r}, device={self.device!r}, "
                f"precision={self.precision!r}, max_length={self.max_length}, batch_size={self.batch_size})")
