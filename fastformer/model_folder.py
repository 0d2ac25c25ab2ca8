"""Model folders: build a classifier, save it with everything it needs, and load it back checked.

A folder holds config.json (with id2label), model.safetensors, checksums.json and the tokenizer files; loading
runs no code from it (docs/inference.md, "Model folders").
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from .cli import UserError
from .configuration import FastformerConfig
from .encoding import check_max_length, set_model_max_length, truncation_length
from .folder_files import ALLOW_PICKLE_HELP, MODEL_FILES, PICKLE_WEIGHTS_FILE, TOKENIZER_CONFIG_FILE, WEIGHTS_FILE
from .fileio import (CHECKSUMS_FILE, atomic_dir, atomic_write, check_checksums, read_checksums, write_checksums,
                     write_json)
from .labels import LABEL_NAMES, label_maps
from .modeling import FastformerForSequenceClassification
from .tokenizer import FastformerTokenizer
from .weight_files import check_model_files, tensors_problem

__all__ = [
    "WEIGHTS_FILE",
    "PICKLE_WEIGHTS_FILE",
    "MODEL_FILES",
    "ALLOW_PICKLE_HELP",
    "build_model",
    "init_encoder",
    "save_model_dir",
    "check_model_dir",
    "model_weights_file",
    "load_tokenizer",
    "load_model_dir",
    "paddlenlp_warnings_only",
]

logger = logging.getLogger(__name__)

WEIGHTS_DTYPES = ("float32", "float16")  # how save_model_dir stores the weights; they load as float32


def build_model(
    tokenizer: FastformerTokenizer, word_vectors: Optional[str] = None, label_names: Sequence[str] = LABEL_NAMES,
    **config_kwargs
) -> FastformerForSequenceClassification:
    """A freshly initialised classifier sized to `tokenizer`, with the labels `label_names` in class-id order (default:
    the star ratings).

    `word_vectors`: a vector file (`word v1 v2 ...` a line, e.g. GloVe or `python -m fastformer_data.word_vectors`)
    whose vectors replace the initial word embeddings of the vocabulary words it holds (the others keep their random
    init).
    """
    id2label, label2id = label_maps(label_names)
    config = FastformerConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        id2label=id2label,
        label2id=label2id,
        **config_kwargs,
    )
    model = FastformerForSequenceClassification(config)
    if word_vectors:
        from .embeddings import load_glove_embeddings

        embedding = model.get_input_embeddings().weight
        vectors = load_glove_embeddings(tokenizer, word_vectors, config.hidden_size, init=embedding.numpy())
        embedding.set_value(vectors)
    return model



def init_encoder(model, path: str) -> None:
    """Start from the encoder weights (`fastformer.*`: embeddings, layers, pooler) of the model folder `path`; the
    classifier keeps its fresh initialisation. The folder's architecture must match the configured one."""
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


def save_model_dir(
    model: FastformerForSequenceClassification,
    tokenizer: FastformerTokenizer,
    path: str,
    max_length: Optional[int] = None,
    extra_json: Optional[Mapping[str, object]] = None,
    weights_dtype: str = "float32",
    extra_text: Optional[Mapping[str, str]] = None,
) -> None:
    """Write everything needed to use the model: weights (safetensors, with their SHA-256 in checksums.json),
    config (with labels) and tokenizer, plus the JSON files of `extra_json` ({file name: object}) and the text files
    of `extra_text` ({file name: text}, e.g. a model card README.md).

    The folder is written next to `path` and renamed to it once complete (`fileio.atomic_dir`): an interrupted save
    leaves the previous folder as it was. `max_length`, the truncation length the model was trained with (default:
    the tokenizer's `model_max_length` when set, else the model's `max_position_embeddings`), is stored as the
    tokenizer's `model_max_length` in `tokenizer_config.json`; `load_model_dir`, `Predictor` and the export read it
    from there. `tokenizer` itself is left unchanged. `weights_dtype` "float16" stores the float32 weights in half
    precision (half the size on disk); `load_model_dir` restores float32.
    """
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype must be one of {WEIGHTS_DTYPES}, got {weights_dtype!r}")
    max_length = check_max_length(max_length or truncation_length(model.config, tokenizer), model.config)
    with atomic_dir(path) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        if not os.path.isfile(os.path.join(staging, WEIGHTS_FILE)):  # e.g. a model large enough to be sharded
            raise RuntimeError(f"save_pretrained wrote no single {WEIGHTS_FILE}: {sorted(os.listdir(staging))}")
        if weights_dtype == "float16":
            _store_float16(os.path.join(staging, WEIGHTS_FILE))
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
        for name, text in (extra_text or {}).items():
            atomic_write(os.path.join(staging, name), text)
        write_checksums(staging, [WEIGHTS_FILE])


def _store_float16(path: str) -> None:
    """Rewrite the float32 tensors of a safetensors file in float16 (a ValueError when one would overflow)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(path, framework="np") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    for name, value in tensors.items():
        if value.dtype == np.float32:
            if value.size and float(np.abs(value).max()) > np.finfo(np.float16).max:
                raise ValueError(f"tensor {name} holds values beyond float16's range: keep weights_dtype float32")
            tensors[name] = value.astype(np.float16)
    save_file(tensors, path, metadata=metadata)


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
                f"fastformer.model_folder.save_model_dir writes {WEIGHTS_FILE}"
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


@contextlib.contextmanager
def paddlenlp_warnings_only():
    """PaddleNLP logs each file it loads at INFO; a loaded folder's user sees its warnings and errors only."""
    from paddlenlp.utils.log import logger

    level = logger.logger.level
    logger.logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.logger.setLevel(level)


def load_tokenizer(path: str, config: FastformerConfig) -> FastformerTokenizer:
    """The tokenizer of a model or export folder, its `model_max_length` = the folder's truncation length
    (`truncation_length`: the recorded one, else `config.max_position_embeddings`)."""
    with paddlenlp_warnings_only():
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
    with paddlenlp_warnings_only():
        config = FastformerConfig.from_pretrained(path)
        model = FastformerForSequenceClassification.from_pretrained(  # float32 also from float16 weights on disk
            path, config=config, use_safetensors=weights == WEIGHTS_FILE, dtype="float32")
    problem = tensors is not None and tensors_problem(
        {name: t.shape for name, t in tensors.items()}, {name: v.shape for name, v in model.state_dict().items()})
    if problem:
        raise UserError(f"{os.path.join(path, weights)}: its tensors are not those of the model config.json "
                        f"describes ({problem})")
    model.eval()
    return model, load_tokenizer(path, model.config)

