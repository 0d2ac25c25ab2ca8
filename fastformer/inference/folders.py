"""Export and model folders as inference sees them: which kind, which files, and the manifest's checksums."""

from __future__ import annotations

import json
import logging
import os
from typing import Optional, Tuple

from ..fileio import CHECKSUMS_FILE, check_checksums
from ..folder_files import MODEL_FILES, PICKLE_WEIGHTS_FILE, WEIGHTS_FILE

__all__ = ["SHIPPED_MODEL_DIR", "shipped_model_dir", "MANIFEST_FILE", "MODEL_PREFIX", "ONNX_FILE", "INPUT_NAMES",
           "BACKENDS", "read_manifest", "find_model_files", "fused_program", "model_folder_marker", "detect_backend",
           "check_manifest_checksums"]

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
MODEL_PREFIX = "model"
ONNX_FILE = MODEL_PREFIX + ".onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
# "paddle" and "inference" both name Paddle Inference on an export; "fused": Paddle Inference on the export's fused
# program (one compiled operator, model.fused.json); "dynamic": the dygraph model of a model folder
BACKENDS = ("auto", "paddle", "onnxruntime", "inference", "dynamic", "fused")
# the trained model that comes with the repository (models/*/README.md is its card); an installed wheel holds it as
# fastformer_models/ next to the fastformer package (pyproject.toml)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED_MODEL_DIR = next((path for path in (os.path.join(_ROOT, folder, "fastformer-amazon-reviews-rating")
                                            for folder in ("models", "fastformer_models")) if os.path.isdir(path)),
                         os.path.join(_ROOT, "models", "fastformer-amazon-reviews-rating"))


def shipped_model_dir() -> str:
    """`SHIPPED_MODEL_DIR`, or a FileNotFoundError saying to pass --model_dir when it is not there."""
    if not os.path.isdir(SHIPPED_MODEL_DIR):
        raise FileNotFoundError(f"no --model_dir given, and the model that comes with the repository "
                                f"({SHIPPED_MODEL_DIR}) is not there: pass --model_dir FOLDER")
    return SHIPPED_MODEL_DIR


def read_manifest(path: str) -> Optional[dict]:
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


def fused_program(manifest: Optional[dict], precision: str = "fp32") -> Tuple[Optional[dict], str]:
    """(the manifest's record of the export's fused program, "") where the export wrote it (precision bf16: its bf16
    program, "fused" -> "bf16"), else (None, why not)."""
    record = (manifest or {}).get("fused") or {}
    if record.get("status") == "ok" and precision == "bf16":
        record = record.get("bf16") or {"reason": "an export made before the fused bf16 program existed: export the "
                                                  "model again"}
    if record.get("status") == "ok":
        return record, ""
    return None, record.get("reason") or "an export made before the fused operator existed: export the model again"


def model_folder_marker(folder: str) -> Optional[str]:
    """The file that makes `folder` a model, checkpoint or export folder (weights, manifest or checksums), if any."""
    names = (WEIGHTS_FILE, PICKLE_WEIGHTS_FILE, MODEL_PREFIX + ".pdiparams", MANIFEST_FILE, CHECKSUMS_FILE)
    return next((name for name in names if os.path.isfile(os.path.join(folder, name))), None)


def detect_backend(path: str) -> str:
    """"inference" for an export folder (manifest.json), "dynamic" for a trained model folder."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder {path!r} does not exist")
    if os.path.isfile(os.path.join(path, MANIFEST_FILE)):
        return "inference"
    if any(os.path.isfile(os.path.join(path, name)) for name in (WEIGHTS_FILE, PICKLE_WEIGHTS_FILE)):
        return "dynamic"
    if any(os.path.isfile(os.path.join(path, MODEL_PREFIX + ext)) for ext in (".json", ".pdmodel")):
        return "inference"  # an export without its manifest: check_model_dir names what is missing
    raise FileNotFoundError(
        f"model folder {path!r} is neither an export ({MANIFEST_FILE}, from export_model.py) nor a trained model "
        f"({MODEL_FILES[-1]}, from train.py); it holds {sorted(os.listdir(path))}"
    )


def check_manifest_checksums(path: str, manifest: dict) -> None:
    """The export's weight files against the SHA-256 its manifest records (`fileio.ChecksumError` on a mismatch);
    an older manifest without them loads with a warning."""
    digests = manifest.get("sha256")
    if not isinstance(digests, dict) or not digests:
        logger.warning(
            "%s: no SHA-256 of the weight files recorded (an older export), their integrity is not checked; export "
            "the model again to record them", os.path.join(path, MANIFEST_FILE))
        return
    check_checksums(path, digests, source=MANIFEST_FILE)
