"""The rating-classification task in one place: labels, model building, model folders and batching.

Every script (train, evaluate, export, predict, serve) goes through these functions, so a model folder
written by one is read the same way by all the others. A model folder holds `config.json` (with
`id2label`), `model.safetensors`, `checksums.json` (its SHA-256) and the tokenizer files (`vocab.txt`,
`tokenizer_config.json`). The truncation length the model was trained with is the tokenizer's `model_max_length`,
stored in `tokenizer_config.json` (a folder without it falls back to the model's `max_position_embeddings`).

Model folders are meant to be handed to others, so loading one runs no code from it: the weights are safetensors
(tensors and a JSON header, nothing to unpickle) and are checked against their recorded SHA-256 first, then
config.json against the allowed values and the weights' shapes and every tensor finite (`weight_files`). A folder
with the older pickle-format `model_state.pdparams` (which can run arbitrary code when unpickled) is loaded only
with `allow_pickle=True` (the scripts' `--allow_pickle`), with a warning.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from data_process import LABEL_NAMES

from .cli import UserError
from .configuration import FastformerConfig
from .fileio import CHECKSUMS_FILE, atomic_dir, check_checksums, read_checksums, write_checksums, write_json
from .modeling import FastformerForSequenceClassification
from .tokenizer import FastformerTokenizer
from .weight_files import check_model_files, tensors_problem

__all__ = [
    "LABEL_NAMES",
    "label_maps",
    "label_to_stars",
    "build_model",
    "save_model_dir",
    "load_model_dir",
    "check_model_dir",
    "model_weights_file",
    "WEIGHTS_FILE",
    "PICKLE_WEIGHTS_FILE",
    "ALLOW_PICKLE_HELP",
    "check_max_length",
    "truncation_length",
    "load_tokenizer",
    "set_model_max_length",
    "pad_batch",
    "DataCollator",
    "encode_texts",
    "count_truncated",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"  # what save_model_dir writes: tensors and a JSON header, nothing to unpickle
PICKLE_WEIGHTS_FILE = "model_state.pdparams"  # older folders (and checkpoints): a pickle, read only with allow_pickle
MODEL_FILES = ("config.json", WEIGHTS_FILE)
ALLOW_PICKLE_HELP = (
    f"also load a model folder whose weights are the pickle-format {PICKLE_WEIGHTS_FILE} (older folders): unpickling "
    "can run arbitrary code, so only for a folder from a source you trust. Folders written now hold model.safetensors"
)
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"  # do_lower_case and model_max_length: without it a cased
# tokenizer would reload lower-casing and the truncation length would be lost
UNSET_MAX_LENGTH = int(1e20)  # PaddleNLP's model_max_length when none was given (VERY_LARGE_INTEGER, 1e30)


def label_maps(names: Sequence[str] = LABEL_NAMES) -> Tuple[Dict[int, str], Dict[str, int]]:
    """id2label / label2id for the star ratings (label id = stars - 1)."""
    id2label = {i: name for i, name in enumerate(names)}
    return id2label, {name: i for i, name in id2label.items()}


def label_to_stars(id2label) -> List[int]:
    """Star rating of each class, in class-id order, from the label names ("1" .. "5").

    `id2label` is a {class id: name} mapping (a config's `id2label`) or the names in class-id order. A name that
    is not a star rating (a positive whole number) is a ValueError: ratings are never guessed from positions.
    """
    names = [id2label[k] for k in sorted(id2label, key=int)] if isinstance(id2label, Mapping) else list(id2label)
    bad = [name for name in names if not str(name).strip().isdigit() or int(str(name).strip()) < 1]
    if bad:
        raise ValueError(f"label names {bad} are not star ratings: every label must be a number of stars "
                         f"(e.g. {list(LABEL_NAMES)}), got labels {names}")
    return [int(str(name).strip()) for name in names]


def build_model(
    tokenizer: FastformerTokenizer, word_vectors: Optional[str] = None, **config_kwargs
) -> FastformerForSequenceClassification:
    """A freshly initialised classifier sized to `tokenizer`, with the star-rating labels.

    `word_vectors`: a vector file (`word v1 v2 ...` a line, e.g. GloVe or `data_process.word_vectors`) whose vectors
    replace the initial word embeddings of the vocabulary words it holds (the others keep their random init).
    """
    id2label, label2id = label_maps()
    config = FastformerConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        id2label=id2label,
        label2id=label2id,
        **config_kwargs,
    )
    model = FastformerForSequenceClassification(config)
    if word_vectors:
        from data_process.glove import load_glove_embeddings

        embedding = model.get_input_embeddings().weight
        vectors = load_glove_embeddings(tokenizer, word_vectors, config.hidden_size, init=embedding.numpy())
        embedding.set_value(vectors)
    return model


def check_max_length(max_length: int, config: FastformerConfig) -> int:
    """`max_length` as an int, or a ValueError when it is outside [1, config.max_position_embeddings]."""
    max_length = int(max_length)
    if not 1 <= max_length <= config.max_position_embeddings:
        raise ValueError(f"max_length must be in [1, {config.max_position_embeddings}] (the model's "
                         f"max_position_embeddings), got {max_length}")
    return max_length


def truncation_length(config: FastformerConfig, tokenizer: FastformerTokenizer) -> int:
    """Tokens kept per text: the tokenizer's `model_max_length` when it was set (the training max_length of a
    folder written by `save_model_dir`), else the model's `max_position_embeddings`."""
    length = tokenizer.model_max_length
    if length is None or length >= UNSET_MAX_LENGTH:
        return config.max_position_embeddings
    return check_max_length(length, config)


def set_model_max_length(tokenizer: FastformerTokenizer, max_length: int) -> None:
    """`tokenizer.model_max_length`, also in the init kwargs that `save_pretrained` writes to tokenizer_config.json."""
    tokenizer.model_max_length = int(max_length)
    tokenizer.init_kwargs["model_max_length"] = int(max_length)


def save_model_dir(
    model: FastformerForSequenceClassification,
    tokenizer: FastformerTokenizer,
    path: str,
    max_length: Optional[int] = None,
    extra_json: Optional[Mapping[str, object]] = None,
) -> None:
    """Write everything needed to use the model: weights (safetensors, with their SHA-256 in checksums.json),
    config (with labels) and tokenizer, plus the JSON files of `extra_json` ({file name: object}).

    The folder is written next to `path` and renamed to it once complete (`fileio.atomic_dir`): an interrupted save
    leaves the previous folder as it was. `max_length`, the truncation length the model was trained with (default:
    the tokenizer's `model_max_length` when set, else the model's `max_position_embeddings`), is stored as the
    tokenizer's `model_max_length` in `tokenizer_config.json`; `load_model_dir`, `Predictor` and the export read it
    from there. `tokenizer` itself is left unchanged.
    """
    max_length = check_max_length(max_length or truncation_length(model.config, tokenizer), model.config)
    with atomic_dir(path) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        if not os.path.isfile(os.path.join(staging, WEIGHTS_FILE)):  # e.g. a model large enough to be sharded
            raise RuntimeError(f"save_pretrained wrote no single {WEIGHTS_FILE}: {sorted(os.listdir(staging))}")
        before = tokenizer.model_max_length, dict(tokenizer.init_kwargs)
        set_model_max_length(tokenizer, max_length)
        try:
            tokenizer.save_pretrained(staging)
        finally:
            tokenizer.model_max_length = before[0]
            tokenizer.init_kwargs.clear()
            tokenizer.init_kwargs.update(before[1])
        for name, obj in (extra_json or {}).items():
            write_json(os.path.join(staging, name), obj)
        write_checksums(staging, [WEIGHTS_FILE])


def check_model_dir(path: str, required: Sequence[str] = MODEL_FILES) -> None:
    """Raise a clear error naming what is missing from a model folder (`required` and the tokenizer files).

    `WEIGHTS_FILE` counts as present in a folder with the older `PICKLE_WEIGHTS_FILE` instead (see
    `model_weights_file`, which decides whether that one may be loaded)."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder {path!r} does not exist")
    tokenizer_files = [*FastformerTokenizer.resource_files_names.values(), TOKENIZER_CONFIG_FILE]
    missing = [name for name in [*required, *tokenizer_files] if not os.path.isfile(os.path.join(path, name))]
    if WEIGHTS_FILE in missing:
        if os.path.isfile(os.path.join(path, PICKLE_WEIGHTS_FILE)):
            missing.remove(WEIGHTS_FILE)
        else:
            missing[missing.index(WEIGHTS_FILE)] = f"{WEIGHTS_FILE} (or the older {PICKLE_WEIGHTS_FILE})"
    if missing:
        raise FileNotFoundError(f"model folder {path!r} is incomplete: missing {', '.join(missing)}")


def model_weights_file(path: str, allow_pickle: bool = False) -> str:
    """The weights file of a model folder, checked before anything is read from it.

    `model.safetensors` when present; else the pickle-format `model_state.pdparams`, only with `allow_pickle` (a
    warning says so; a `UserError` otherwise). Every file recorded in `checksums.json` must have its SHA-256
    (`fileio.ChecksumError` naming the file otherwise); a folder without the record loads with a warning.
    """
    name = WEIGHTS_FILE
    if not os.path.isfile(os.path.join(path, WEIGHTS_FILE)):
        name = PICKLE_WEIGHTS_FILE
        file = os.path.join(path, name)
        if not allow_pickle:
            raise UserError(
                f"{file}: pickle-format weights, which can run arbitrary code when loaded; if you trust where the "
                "folder comes from, pass --allow_pickle (allow_pickle=True); saving the model again with "
                f"fastformer.task.save_model_dir writes {WEIGHTS_FILE}"
            )
        logger.warning("loading pickle-format weights %s (allowed by allow_pickle): unpickling can run code; do this "
                       "only for a folder from a trusted source", file)
    digests = read_checksums(path)
    if digests is None or name not in digests:
        logger.warning("%s: no SHA-256 recorded in %s, its integrity is not checked",
                       os.path.join(path, name), CHECKSUMS_FILE)
    if digests:
        check_checksums(path, digests)
    return name


def load_tokenizer(path: str, config: FastformerConfig) -> FastformerTokenizer:
    """The tokenizer of a model or export folder, its `model_max_length` = the folder's truncation length
    (`truncation_length`: the recorded one, else `config.max_position_embeddings`)."""
    tokenizer = FastformerTokenizer.from_pretrained(path)
    set_model_max_length(tokenizer, truncation_length(config, tokenizer))
    return tokenizer


def load_model_dir(
    path: str, allow_pickle: bool = False
) -> Tuple[FastformerForSequenceClassification, FastformerTokenizer]:
    """Load a model folder written by `save_model_dir` (or `train.py`), in eval mode.

    The weights are checked first (`model_weights_file`: safetensors and their SHA-256; the pickle format only with
    `allow_pickle`), then config.json against the allowed values and the weights' shapes, and every tensor finite
    (`weight_files.check_model_files`), before the model is built; the model's parameters must then be exactly the
    file's tensors. The tokenizer's `model_max_length` is the truncation length to use (see `load_tokenizer`).
    """
    check_model_dir(path)
    weights = model_weights_file(path, allow_pickle)
    tensors = check_model_files(path, weights)
    config = FastformerConfig.from_pretrained(path)
    model = FastformerForSequenceClassification.from_pretrained(path, config=config,
                                                                use_safetensors=weights == WEIGHTS_FILE)
    problem = tensors is not None and tensors_problem(
        {name: t.shape for name, t in tensors.items()}, {name: v.shape for name, v in model.state_dict().items()})
    if problem:
        raise UserError(f"{os.path.join(path, weights)}: its tensors are not those of the model config.json "
                        f"describes ({problem})")
    model.eval()
    return model, load_tokenizer(path, model.config)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0, multiple_of: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Pad id lists to the longest (rounded up to `multiple_of`): (input_ids, attention_mask), int64 [B, L]."""
    length = max(1, max((len(s) for s in sequences), default=1))
    length = -(-length // multiple_of) * multiple_of
    input_ids = np.full((len(sequences), length), pad_id, dtype="int64")
    attention_mask = np.zeros((len(sequences), length), dtype="int64")
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = seq
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


class DataCollator:
    """Dynamic padding for the Trainer: features with `input_ids` (and `labels`) -> padded numpy batch."""

    def __init__(self, pad_id: int = 0, multiple_of: int = 8):
        self.pad_id = pad_id
        self.multiple_of = multiple_of

    def __call__(self, features: List[dict]) -> Dict[str, np.ndarray]:
        input_ids, attention_mask = pad_batch([f["input_ids"] for f in features], self.pad_id, self.multiple_of)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "labels" in features[0]:
            batch["labels"] = np.asarray([f["labels"] for f in features], dtype="int64")
        return batch


def encode_texts(tokenizer: FastformerTokenizer, texts: Sequence[str], max_length: int) -> List[List[int]]:
    """Token ids of each text, truncated to `max_length` (the fast path of the tokenizer)."""
    return tokenizer.encode_batch(list(texts), max_length=max_length)["input_ids"]


def count_truncated(tokenizer: FastformerTokenizer, text: str, max_length: int) -> Optional[int]:
    """Number of tokens dropped from `text` by truncation to `max_length` (None when nothing is dropped)."""
    n = len(tokenizer.tokenize(text))
    return n - max_length if n > max_length else None
