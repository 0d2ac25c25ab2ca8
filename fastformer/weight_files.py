"""Weight files read without running code or loading them whole, and the checks of a received folder before use.

Tensor records come from the safetensors header or the `.pdiparams` records; a folder's config.json, weight shapes
and finiteness are checked before anything is built (docs/internals.md).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .cli import UserError
from .configuration import check_config_values

__all__ = [
    "TensorInfo",
    "safetensors_tensors",
    "pdiparams_tensors",
    "check_finite",
    "tensors_problem",
    "read_config_file",
    "check_model_files",
    "check_export_files",
    "MAX_CONFIG_BYTES",
]

MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few hundred bytes; a larger one is not read
MAX_HEADER_BYTES = 100 << 20  # the safetensors format's own limit on its JSON header
_CHUNK = 1 << 22  # elements checked at a time: bounded memory on any tensor size

# safetensors dtype -> (numpy dtype, kind); "bf16" is checked through its bits
_SAFETENSORS_DTYPES = {"F64": ("float64", "float"), "F32": ("float32", "float"), "F16": ("float16", "float"),
                       "BF16": ("uint16", "bf16"), "I64": ("int64", "int"), "I32": ("int32", "int"),
                       "I16": ("int16", "int"), "I8": ("int8", "int"), "U8": ("uint8", "int"), "BOOL": ("bool", "int")}
# Paddle's VarType (framework.proto) -> (numpy dtype, kind)
_PADDLE_DTYPES = {0: ("bool", "int"), 1: ("int16", "int"), 2: ("int32", "int"), 3: ("int64", "int"),
                  4: ("float16", "float"), 5: ("float32", "float"), 6: ("float64", "float"), 20: ("uint8", "int"),
                  21: ("int8", "int"), 22: ("uint16", "bf16"), 23: ("complex64", "float"), 24: ("complex128", "float")}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype of the stored elements (bf16: uint16)
    kind: str  # "float", "bf16" or "int"
    shape: Tuple[int, ...]
    offset: int  # first byte in the file
    nbytes: int


def _open_map(path: str):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""), size


def safetensors_tensors(path: str) -> Dict[str, TensorInfo]:
    """{name: TensorInfo} from a safetensors file's header; a `UserError` naming the file when the header is not
    one (too long, not JSON, a tensor outside the file or of the wrong byte size)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise UserError(f"{path}: not a safetensors file (header length {length} for a {size}-byte file)")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: safetensors header is not a JSON object")
    tensors, start = {}, 8 + length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, kind = _SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(entry["shape"])
            begin, end = entry["data_offsets"]
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (*shape, begin, end)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: tensor {name!r} has an unsupported or malformed header entry "
                            f"{json.dumps(entry)[:200]}") from None
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
        if end - begin != nbytes or start + end > size:
            raise UserError(f"{path}: tensor {name!r} of shape {shape} ({entry['dtype']}) does not fit its byte range "
                            f"[{begin}, {end}) in a {size - start}-byte data section")
        tensors[name] = TensorInfo(name, dtype, kind, shape, start + begin, nbytes)
    return tensors


def _varint(buf, i: int, end: int) -> Tuple[int, int]:
    value = shift = 0
    while i < end and shift < 70:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i
    raise ValueError("truncated varint")


def _tensor_desc(buf, i: int, end: int) -> Tuple[int, List[int]]:
    """(data type, dims) of a TensorDesc protobuf: field 1 the type, field 2 the dims (packed or not)."""
    dtype, dims = None, []
    while i < end:
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, end)
            if field == 1:
                dtype = value
            elif field == 2:
                dims.append(value)
        elif wire == 2:
            length, i = _varint(buf, i, end)
            stop = i + length
            if stop > end:
                raise ValueError("truncated field")
            while field == 2 and i < stop:
                value, i = _varint(buf, i, stop)
                dims.append(value)
            i = stop
        else:
            raise ValueError(f"unexpected wire type {wire}")
    if dtype is None or any(d >= 1 << 63 for d in dims):  # a negative (unknown) dimension has no data to read
        raise ValueError("no data type or a negative dimension")
    return dtype, dims


def _program_parameters(model_file: Optional[str]) -> Optional[List[Tuple[str, Tuple[int, ...]]]]:
    """(name, shape) of the parameters a PIR JSON program (`model.json`) declares, sorted by name (the order of the
    params file); None when the program is not that format."""
    if not model_file or not model_file.endswith(".json"):
        return None
    try:
        with open(model_file, encoding="utf-8") as f:
            program = json.load(f)
        ops = program["program"]["regions"][0]["blocks"][0]["ops"]
        params = [(op["A"][3], tuple(op["O"]["TT"]["D"][1])) for op in ops if op.get("#") == "p"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return sorted(params)


def pdiparams_tensors(path: str, model_file: Optional[str] = None) -> List[TensorInfo]:
    """The tensors of a Paddle combined params file, in file order. Named from `model_file` (a PIR `model.json`)
    when it declares as many parameters of the same shapes, else "tensor <i>". A `UserError` naming the file when a
    record is malformed or runs past the end."""
    buf, size = _open_map(path)
    found, i = [], 0
    try:
        while i < size:
            if i + 12 > size:
                raise ValueError("truncated record")
            lod_levels = struct.unpack_from("<Q", buf, i + 4)[0]
            i += 12
            for _ in range(min(lod_levels, size)):
                if i + 8 > size:
                    raise ValueError("truncated LoD")
                i += 8 + struct.unpack_from("<Q", buf, i)[0]
            if i + 8 > size:
                raise ValueError("truncated tensor header")
            desc_size = struct.unpack_from("<i", buf, i + 4)[0]
            i += 8
            if not 0 <= desc_size <= size - i:
                raise ValueError(f"tensor description of {desc_size} bytes")
            dtype_id, dims = _tensor_desc(buf, i, i + desc_size)
            i += desc_size
            if dtype_id not in _PADDLE_DTYPES:
                raise ValueError(f"unsupported data type {dtype_id}")
            dtype, kind = _PADDLE_DTYPES[dtype_id]
            nbytes = int(np.prod(dims, dtype=object)) * np.dtype(dtype).itemsize
            if nbytes > size - i:
                raise ValueError(f"shape {tuple(dims)} needs {nbytes} bytes, {size - i} left")
            found.append((dtype, kind, tuple(dims), i, nbytes))
            i += nbytes
    except (ValueError, struct.error) as exc:
        raise UserError(f"{path}: not a Paddle params file: tensor {len(found)} near byte {i}: {exc}") from None
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    params = _program_parameters(model_file)
    if params is None or [shape for _, shape in params] != [t[2] for t in found]:
        params = [(f"tensor {k}", t[2]) for k, t in enumerate(found)]
    return [TensorInfo(name, *t) for (name, _), t in zip(params, found)]


def _non_finite(buf, tensor: TensorInfo) -> int:
    """Number of NaN/Inf values of `tensor` in `buf`, counted a few million elements at a time (bounded memory)."""
    dtype = np.dtype(tensor.dtype)
    count, bad = tensor.nbytes // dtype.itemsize, 0
    for first in range(0, count, _CHUNK):
        values = np.frombuffer(buf, dtype=dtype, count=min(_CHUNK, count - first),
                               offset=tensor.offset + first * dtype.itemsize)
        # bf16 (read as its bits): Inf or NaN when the exponent bits are all set
        bad += int((((values & 0x7F80) == 0x7F80) if tensor.kind == "bf16" else ~np.isfinite(values)).sum())
    return bad


def check_finite(path: str, tensors: Sequence[TensorInfo]) -> None:
    """A `UserError` naming `path` and the first tensor with a NaN or infinite value (float and bf16 tensors, read
    through a memory map)."""
    buf, _ = _open_map(path)
    try:
        for tensor in tensors:
            bad = _non_finite(buf, tensor) if tensor.kind != "int" and tensor.nbytes else 0
            if bad:
                raise UserError(f"{path}: tensor {tensor.name} {list(tensor.shape)} holds {bad} non-finite value(s) "
                                "(NaN or Inf): damaged weights")
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def tensors_problem(theirs: Mapping[str, Sequence[int]], own: Mapping[str, Sequence[int]]) -> Optional[str]:
    """How the tensor shapes `theirs` ({name: shape}, e.g. a file's) differ from `own` (a model's): shapes that
    differ, tensors missing, unknown ones, each counted with an example; None when they are the same."""
    theirs = {name: tuple(shape) for name, shape in theirs.items()}
    own = {name: tuple(shape) for name, shape in own.items()}
    missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    shapes = [f"{name} {list(theirs[name])} there, {list(own[name])} here" for name in own
              if name in theirs and theirs[name] != own[name]]
    parts = ([f"{len(shapes)} tensor shape(s) differ, e.g. {shapes[0]}"] if shapes else []) + (
        [f"{len(missing)} tensor(s) missing, e.g. {missing[0]}"] if missing else []) + (
        [f"{len(extra)} unknown tensor(s), e.g. {extra[0]}"] if extra else [])
    return "; ".join(parts) or None


def read_config_file(path: str) -> dict:
    """A folder's config.json as a dict, its values checked (`check_config_values`); a `UserError` naming the file
    (and the field) otherwise. Files over `MAX_CONFIG_BYTES` are not read."""
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {size} bytes, not a model config (at most {MAX_CONFIG_BYTES})")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a JSON config ({exc})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: a config must be a JSON object, got {type(values).__name__}")
    labels = values.get("id2label")
    if labels is not None:
        if not isinstance(labels, dict) or not labels:
            raise UserError(f"{path}: id2label must be a non-empty object of class ids and names")
        if "num_labels" in values and values["num_labels"] != len(labels):
            raise UserError(f"{path}: num_labels is {values['num_labels']!r} but id2label has {len(labels)} labels")
    try:
        check_config_values(values)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    return values


def _num_labels(values: Mapping) -> int:
    labels = values.get("id2label")
    return len(labels) if labels else values.get("num_labels", 5)  # FastformerConfig's default


def _layer_indices(tensors: Mapping[str, TensorInfo]) -> List[int]:
    indices = set()
    for name in tensors:
        parts = name.split(".")
        if len(parts) > 3 and parts[:2] == ["fastformer", "layers"] and parts[2].isdigit():
            indices.add(int(parts[2]))
    return sorted(indices)


def check_model_files(path: str, weights: str) -> Optional[Dict[str, TensorInfo]]:
    """Check a model folder before a model is built from it: config.json's values, and for safetensors weights the
    config against the tensors' shapes (vocabulary, width, positions, layers, feed-forward width, heads, labels) and
    every tensor finite. Returns the tensors (None for pickle-format weights, whose config values alone are checked).
    A `UserError` naming the file and field or tensor."""
    config_path = os.path.join(path, "config.json")
    values = read_config_file(config_path)
    if not weights.endswith(".safetensors"):
        return None
    weights_path = os.path.join(path, weights)
    tensors = safetensors_tensors(weights_path)
    fields = {key: values.get(key, default) for key, default in (
        ("vocab_size", 30000), ("hidden_size", 256), ("max_position_embeddings", 512), ("intermediate_size", 256),
        ("num_attention_heads", 16), ("num_hidden_layers", 2), ("attention_type", "additive"))}
    fields["num_labels"] = _num_labels(values)
    expected = {  # tensor: the config fields giving its shape (layer 0's once the layer count fits)
        "fastformer.embeddings.word_embeddings.weight": ("vocab_size", "hidden_size"),
        "fastformer.embeddings.position_embeddings.weight": ("max_position_embeddings", "hidden_size"),
        "classifier.weight": ("hidden_size", "num_labels"),
        "fastformer.layers.0.intermediate.weight": ("hidden_size", "intermediate_size"),
    }
    if fields["attention_type"] == "additive":
        expected["fastformer.layers.0.attention.query_att.weight"] = ("hidden_size", "num_attention_heads")
    for name, keys in expected.items():
        if name.startswith("fastformer.layers.0."):
            layers = _layer_indices(tensors)
            if layers != list(range(fields["num_hidden_layers"])):
                raise UserError(f"{config_path}: num_hidden_layers {fields['num_hidden_layers']} does not fit "
                                f"{weights_path}, which holds {len(layers)} layer(s)")
        if name not in tensors:
            raise UserError(f"{weights_path}: no tensor {name}, whose shape config.json's {' and '.join(keys)} give")
        want = tuple(fields[k] for k in keys)
        if tensors[name].shape != want:
            differ = [f"{k} {v}" for k, v, n in zip(keys, want, tensors[name].shape) if v != n]
            raise UserError(f"{config_path}: {', '.join(differ)} does not fit {weights_path}, whose {name} has shape "
                            f"{list(tensors[name].shape)} ({' x '.join(keys)})")
    check_finite(weights_path, list(tensors.values()))
    return tensors


def check_export_files(path: str, model_file: str, params_file: str, manifest: Mapping) -> dict:
    """Check an export folder before Paddle Inference loads it: config.json's values; its vocabulary, position and
    label sizes against the manifest and against the params' shapes (the word and position embeddings, the classifier
    and a feed-forward weight per layer must be among them); every params tensor finite. Returns config.json's
    values."""
    config_path = os.path.join(path, "config.json")
    values = read_config_file(config_path)
    hidden = values.get("hidden_size", 256)
    sizes = {"vocab_size": values.get("vocab_size", 30000),
             "max_position_embeddings": values.get("max_position_embeddings", 512),
             "num_labels": _num_labels(values)}
    for key in ("vocab_size", "max_position_embeddings"):
        if key in manifest and manifest[key] != sizes[key]:
            raise UserError(f"{config_path}: {key} {sizes[key]} differs from the manifest's {manifest[key]!r}")
    params_path = os.path.join(path, params_file)
    tensors = pdiparams_tensors(params_path, os.path.join(path, model_file))
    shapes = {t.shape for t in tensors}
    for key, shape in (("vocab_size", (sizes["vocab_size"], hidden)),
                       ("max_position_embeddings", (sizes["max_position_embeddings"], hidden)),
                       ("num_labels", (hidden, sizes["num_labels"]))):
        if shape not in shapes:
            raise UserError(f"{config_path}: {key} {sizes[key]} (with hidden_size {hidden}) does not fit {params_path}: "
                            f"no tensor of shape {list(shape)}")
    layers, width = values.get("num_hidden_layers", 2), values.get("intermediate_size", 256)
    if sum(t.shape == (hidden, width) for t in tensors) < layers:  # one feed-forward weight per layer at least
        raise UserError(f"{config_path}: num_hidden_layers {layers} does not fit {params_path}: fewer tensors of shape "
                        f"{[hidden, width]} (hidden_size x intermediate_size) than layers")
    check_finite(params_path, tensors)
    return values

