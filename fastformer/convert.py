"""Official PyTorch Fastformer checkpoint (github.com/wuch15/Fastformer) -> Paddle model folder.

    python -m fastformer.convert --torch_checkpoint model.pt --tokenizer_dir TOK --output_dir DIR

The `.pt` file is read with `torch.load(weights_only=True)` (`--allow_pickle` only for a trusted file); the mapping
works on numpy arrays (docs/internals.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from .cli import UserError

__all__ = [
    "paddle_name",
    "is_linear_weight",
    "convert_state_dict",
    "to_torch_state_dict",
    "config_from_torch_state_dict",
    "load_torch_state_dict",
    "load_converted",
    "convert_checkpoint",
    "main",
]

# Official name (after the encoder-layer prefix) -> Paddle name (after `fastformer.layers.{i}.`).
_LAYER_MAP = {
    "attention.self.query": "attention.query",
    "attention.self.query_att": "attention.query_att",
    "attention.self.key": "attention.key",
    "attention.self.key_att": "attention.key_att",
    "attention.self.transform": "attention.transform",
    "attention.output.dense": "attention_output.dense",
    "attention.output.LayerNorm": "attention_output.layer_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output.dense",
    "output.LayerNorm": "output.layer_norm",
}
_TOP_MAP = {
    "dense_linear": "classifier",
    "word_embedding": "fastformer.embeddings.word_embeddings",
    "fastformer_model.position_embeddings": "fastformer.embeddings.position_embeddings",
    "fastformer_model.LayerNorm": "fastformer.embeddings.layer_norm",
    "fastformer_model.poolers.0.att_fc1": "fastformer.pooler.att_fc1",
    "fastformer_model.poolers.0.att_fc2": "fastformer.pooler.att_fc2",
}
_LAYER_RE = re.compile(r"^fastformer_model\.encoders\.(\d+)\.(.+)\.(weight|bias)$")
_TOP_RE = re.compile(r"^(.+)\.(weight|bias)$")
# Official modules that are nn.Linear (their weights get transposed); every other weight is an Embedding or LayerNorm.
_LINEAR_MODULES = {"dense_linear", "fastformer_model.poolers.0.att_fc1", "fastformer_model.poolers.0.att_fc2"} | {
    name for name in _LAYER_MAP if not name.endswith("LayerNorm")
}


def _strip(name: str) -> str:
    """Drop the `module.` prefix DataParallel / DistributedDataParallel adds."""
    return name[len("module.") :] if name.startswith("module.") else name


def paddle_name(torch_name: str) -> Optional[str]:
    """Paddle state-dict name of an official parameter name, None for a name that has no Paddle counterpart."""
    name = _strip(torch_name)
    match = _LAYER_RE.match(name)
    if match:
        index, module, kind = match.groups()
        if module in _LAYER_MAP:
            return f"fastformer.layers.{index}.{_LAYER_MAP[module]}.{kind}"
        return None
    match = _TOP_RE.match(name)
    if match and match.group(1) in _TOP_MAP:
        return f"{_TOP_MAP[match.group(1)]}.{match.group(2)}"
    return None


def is_linear_weight(torch_name: str) -> bool:
    """Whether an official parameter is an nn.Linear weight ([out, in] in torch, to be transposed)."""
    name = _strip(torch_name)
    if not name.endswith(".weight"):
        return False
    module = name[: -len(".weight")]
    match = _LAYER_RE.match(name)
    if match:
        module = match.group(2)
    return module in _LINEAR_MODULES


def _to_numpy(value) -> np.ndarray:
    """numpy array from a numpy array or a torch tensor (torch only touched when given one)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch.Tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def convert_state_dict(torch_state_dict: Mapping[str, object], strict: bool = True) -> Dict[str, np.ndarray]:
    """Official state dict (numpy arrays or torch tensors) -> Paddle state dict of float32 numpy arrays.

    Linear weights are transposed; embeddings, LayerNorm and biases are copied. With `strict`, any parameter
    that has no Paddle counterpart (e.g. a second pooler `poolers.1.*`) raises a ValueError naming it.
    """
    converted, unknown = {}, []
    for name, value in torch_state_dict.items():
        target = paddle_name(name)
        if target is None:
            unknown.append(name)
            continue
        array = _to_numpy(value)
        if is_linear_weight(name):
            if array.ndim != 2:
                raise ValueError(f"{name}: a Linear weight must be 2-D, got shape {list(array.shape)}")
            array = array.T
        converted[target] = np.ascontiguousarray(array, dtype=np.float32)
    embedding = converted.get("fastformer.embeddings.word_embeddings.weight")
    if embedding is not None and np.any(embedding[0] != 0):
        # torch's padding_idx keeps row 0 at its stored value; Paddle's forces the looked-up vector to 0
        warnings.warn(
            "word_embedding row 0 (padding) is not zero: the official model reads it, Paddle's Embedding with "
            "padding_idx=0 outputs zeros for it, so the converted model will differ on padded inputs"
        )
    if unknown and strict:
        raise ValueError(
            "these parameters of the PyTorch checkpoint have no Paddle counterpart (is it the official "
            f"Fastformer `Model`?): {', '.join(sorted(unknown))}"
        )
    return converted


def to_torch_state_dict(paddle_state_dict: Mapping[str, object], torch_names: Iterable[str],
                        dtype=np.float32) -> Dict[str, np.ndarray]:
    """The inverse of `convert_state_dict`: Paddle state dict (numpy arrays or Paddle tensors) -> the official
    parameters `torch_names` as numpy arrays of `dtype` (float32; Linear weights transposed back to [out, in]).

    A torch name without a Paddle counterpart, or one whose Paddle parameter is missing, is a ValueError naming it;
    so is a Paddle parameter the official model has no place for (e.g. a value projection): nothing is dropped.
    """
    out, missing = {}, []
    used = set()
    for name in torch_names:
        source = paddle_name(name)
        if source is None or source not in paddle_state_dict:
            missing.append(name if source is None else f"{name} (Paddle {source})")
            continue
        value = paddle_state_dict[source]
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=dtype)
        out[name] = np.ascontiguousarray(array.T if is_linear_weight(name) else array)
        used.add(source)
    left_over = sorted(set(paddle_state_dict) - used)
    if missing or left_over:
        raise ValueError(
            "the Paddle weights do not map onto the official model: "
            + "; ".join(f"{title}: {', '.join(items)}" for title, items in
                        (("no Paddle weight for", missing), ("no official parameter for", left_over)) if items)
        )
    return out


def _shape(value) -> Tuple[int, ...]:
    return tuple(int(s) for s in value.shape)


def config_from_torch_state_dict(
    torch_state_dict: Mapping[str, object],
    num_attention_heads: Optional[int] = None,
    **config_kwargs,
):
    """`FastformerConfig` of the model an official state dict belongs to.

    Read from the shapes: vocab_size and hidden_size (`word_embedding`), num_hidden_layers (encoder indices),
    intermediate_size, max_position_embeddings and num_labels (`dense_linear`). The number of heads is the
    output width of `query_att` ([N, H] in torch); `num_attention_heads`, when given, must agree with it.
    Padding id is 0 as in the official model. `config_kwargs` (e.g. layer_norm_eps, hidden_dropout_prob, id2label)
    are passed on to `FastformerConfig`.
    """
    from .configuration import FastformerConfig

    sd = {_strip(k): v for k, v in torch_state_dict.items()}

    def get(name: str):
        if name not in sd:
            raise ValueError(f"{name!r} is not in the PyTorch state dict: not an official Fastformer `Model` checkpoint")
        return sd[name]

    vocab_size, hidden_size = _shape(get("word_embedding.weight"))
    max_positions = _shape(get("fastformer_model.position_embeddings.weight"))[0]
    num_labels = _shape(get("dense_linear.weight"))[0]
    layers = sorted({int(m.group(1)) for m in map(_LAYER_RE.match, sd) if m})
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"encoder layers must be numbered 0..n-1, found {layers}")
    intermediate_size = _shape(get("fastformer_model.encoders.0.intermediate.dense.weight"))[0]
    heads = _shape(get("fastformer_model.encoders.0.attention.self.query_att.weight"))[0]
    if num_attention_heads is not None and num_attention_heads != heads:
        raise ValueError(
            f"num_attention_heads={num_attention_heads} but the checkpoint's query_att has {heads} outputs (= heads)"
        )
    if "fastformer_model.poolers.0.att_fc1.weight" not in sd:
        raise ValueError("the checkpoint has no attention pooler (fastformer_model.poolers.0.*): not supported")
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=len(layers),
        num_attention_heads=heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        pad_token_id=0,
        pooler_type="attention",
        use_value_projection=False,
        share_attention_layers=False,
    )
    kwargs.update(config_kwargs)
    if "id2label" not in kwargs:
        kwargs["num_labels"] = num_labels
    config = FastformerConfig(**kwargs)
    if config.num_labels != num_labels:
        raise ValueError(f"id2label has {config.num_labels} labels, the checkpoint's classifier {num_labels}")
    return config


def load_torch_state_dict(path: str, allow_pickle: bool = False) -> Dict[str, object]:
    """Read a `.pt` file: a raw state dict, or a dict with it under "state_dict" / "model_state_dict".

    Only tensors and plain containers are unpickled (`torch.load(weights_only=True)`); `allow_pickle` lifts that
    for a trusted file (e.g. a pickled `nn.Module`), with a warning.
    """
    import pickle

    import torch

    if allow_pickle:
        logging.getLogger(__name__).warning(
            "reading %s with full unpickling (allowed by --allow_pickle): it can run code; only for a trusted file", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            raise UserError(
                f"{path}: holds more than tensors and plain containers (here: {found.group(1) if found else '?'}), "
                "which torch.load(weights_only=True) refuses: unpickling it could run code; if you trust where it "
                "comes from, pass --allow_pickle"
            ) from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ValueError(
            f"{path}: expected a state dict, or a dict with one under 'state_dict' or 'model_state_dict'"
        )
    return dict(obj)


def _check_keys(model_sd: Mapping[str, object], converted: Mapping[str, np.ndarray]) -> None:
    missing = sorted(set(model_sd) - set(converted))
    unexpected = sorted(set(converted) - set(model_sd))
    mismatched = sorted(
        f"{k}: checkpoint {list(converted[k].shape)} vs model {list(model_sd[k].shape)}"
        for k in set(model_sd) & set(converted)
        if list(converted[k].shape) != list(model_sd[k].shape)
    )
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched)):
        if items:
            problems.append(f"{title} keys ({len(items)}):\n    " + "\n    ".join(items))
    if problems:
        raise ValueError("the converted weights do not fit the Paddle model:\n  " + "\n  ".join(problems))


def load_converted(model, converted: Mapping[str, np.ndarray]) -> None:
    """Load converted weights into a Paddle model; a ValueError lists missing/unexpected/mismatched keys."""
    import paddle

    _check_keys(model.state_dict(), converted)
    missing, unexpected = model.set_state_dict({k: paddle.to_tensor(v) for k, v in converted.items()})
    if missing or unexpected:  # cannot happen after _check_keys; kept as a guard
        raise ValueError(f"set_state_dict: missing {missing}, unexpected {unexpected}")


def convert_checkpoint(
    torch_state_dict: Mapping[str, object], num_attention_heads: Optional[int] = None, **config_kwargs
):
    """Official state dict -> `FastformerForSequenceClassification` (eval mode) holding its weights."""
    from .modeling import FastformerForSequenceClassification

    config = config_from_torch_state_dict(torch_state_dict, num_attention_heads, **config_kwargs)
    model = FastformerForSequenceClassification(config)
    load_converted(model, convert_state_dict(torch_state_dict))
    model.eval()
    return model


def _parse_args(argv: Optional[Iterable[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fastformer.convert",
        description="Convert an official PyTorch Fastformer checkpoint into a Paddle model folder.",
        allow_abbrev=False,
    )
    parser.add_argument("--torch_checkpoint", required=True, help="the .pt file (state dict of the official Model)")
    parser.add_argument("--output_dir", required=True, help="model folder to write (config.json, model.safetensors, "
                        "tokenizer)")
    parser.add_argument(
        "--num_attention_heads",
        type=int,
        default=None,
        help="heads; read from query_att's shape when left out (the official setting is 16)",
    )
    parser.add_argument("--layer_norm_eps", type=float, default=1e-12, help="not stored in the weights (official 1e-12)")
    parser.add_argument("--hidden_dropout_prob", type=float, default=0.2, help="for fine-tuning (official 0.2)")
    parser.add_argument(
        "--tokenizer_dir",
        default=None,
        help="required: the FastformerTokenizer folder whose vocabulary the checkpoint uses; copied into output_dir",
    )
    parser.add_argument(
        "--allow_pickle",
        action="store_true",
        help="read a checkpoint that holds more than tensors (e.g. a pickled nn.Module) with full unpickling, which "
        "can run code: only for a file from a source you trust",
    )
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = _parse_args(argv)
    if not os.path.isfile(args.torch_checkpoint):
        raise FileNotFoundError(f"{args.torch_checkpoint!r} does not exist")
    # The output is a complete model folder (model_folder.check_model_dir): weights, config with the star-rating labels,
    # and the tokenizer whose vocabulary the checkpoint was trained with.
    from . import labels, model_folder
    from .tokenizer import FastformerTokenizer

    vocab_name = FastformerTokenizer.resource_files_names["vocab_file"]
    if not args.tokenizer_dir:
        raise ValueError(
            "--tokenizer_dir is required: the converted model folder needs the tokenizer (vocab.txt) whose "
            "vocabulary the checkpoint was trained with, e.g. a FastformerTokenizer folder saved by train.py"
        )
    if not os.path.isfile(os.path.join(args.tokenizer_dir, vocab_name)):
        raise FileNotFoundError(
            f"--tokenizer_dir {args.tokenizer_dir!r} has no {vocab_name}: give the FastformerTokenizer folder whose "
            "vocabulary the checkpoint was trained with (e.g. a model folder saved by train.py)"
        )
    torch_sd = load_torch_state_dict(args.torch_checkpoint, allow_pickle=args.allow_pickle)
    tokenizer = FastformerTokenizer.from_pretrained(args.tokenizer_dir)
    id2label, label2id = labels.label_maps()
    model = convert_checkpoint(
        torch_sd,
        args.num_attention_heads,
        layer_norm_eps=args.layer_norm_eps,
        hidden_dropout_prob=args.hidden_dropout_prob,
        id2label=id2label,
        label2id=label2id,
    )
    if len(tokenizer) != model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the checkpoint {model.config.vocab_size}")
    if tokenizer.pad_token_id != 0:
        raise ValueError(f"the official model pads with id 0, the tokenizer with {tokenizer.pad_token_id}")
    model_folder.save_model_dir(model, tokenizer, args.output_dir)
    model_folder.check_model_dir(args.output_dir)
    c = model.config
    print(
        f"converted {args.torch_checkpoint} -> {args.output_dir}: vocab {c.vocab_size}, hidden {c.hidden_size}, "
        f"{c.num_hidden_layers} layers, {c.num_attention_heads} heads, {c.num_labels} labels"
    )
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
