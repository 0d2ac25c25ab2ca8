"""The predictor flags shared by predict.py, evaluate.py and serve.py (read back by `loader.predictor_from_args`)."""

from __future__ import annotations

import argparse

from ..model_folder import ALLOW_PICKLE_HELP
from .folders import BACKENDS
from .precision import precision_arg
from .runners import DEVICES

__all__ = ["add_predictor_args", "add_allow_pickle_arg"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_predictor_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `Predictor` flags shared by predict.py, evaluate.py and serve.py (read back by `loader.predictor_from_args`,
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
    group.add_argument("--precision", type=precision_arg, default="auto", metavar="{auto,fp32,bf16}",
                       help="auto: bf16 where the CPU has avx512_bf16/AMX and the export passed the quality gate "
                       "against fp32 on the dev split, else fp32; bf16: the same, with a warning when it falls back; "
                       "fp32. int8 is not available (Paddle 3.3 Inference has no CPU int8 path for this model)")
    group.add_argument("--precision_data", default=None,
                       help="dev split (JSON lines {text, label}) for the bf16 quality gate when the export has not "
                       "been checked yet (default: data/dev.jsonl next to the model folder)")
    return parser


def add_allow_pickle_arg(parser) -> None:
    """`--allow_pickle` (see `ALLOW_PICKLE_HELP`), shared by the scripts that load a trained model folder."""
    parser.add_argument("--allow_pickle", action="store_true", help=ALLOW_PICKLE_HELP)
