"""The predictor flags shared by predict.py, evaluate.py and serve.py (read back by `loader.predictor_from_args`)."""

from __future__ import annotations

import argparse

from ..folder_files import ALLOW_PICKLE_HELP
from .folders import BACKENDS
from .precision import precision_arg
from .runners import DEVICES

__all__ = ["add_predictor_args", "add_allow_pickle_arg", "add_explain_args"]


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
                       help="auto: for an export, the fastest backend that passed the quality gate on this CPU (Paddle "
                       "Inference, its fused operator, or ONNX Runtime where installed), and for batches of up to 4 "
                       "texts the one fastest on single texts; dynamic for a trained model folder; paddle (or "
                       "inference): Paddle Inference; fused: Paddle Inference on the export's one-operator program "
                       "(model.fused.json; model.fused.bf16.json in bf16); onnxruntime: the export's model.onnx "
                       "(optional package)")
    group.add_argument("--device", choices=DEVICES, default="cpu")
    group.add_argument("--num_threads", type=_positive_int, default=None, help="CPU threads (default: every core)")
    group.add_argument("--batch_size", type=_positive_int, default=64,
                       help="the most texts in one forward pass (texts are split by length)")
    group.add_argument("--max_length", type=_positive_int, default=None,
                       help="tokens kept per review (default: the model folder's: the training max_length, or the "
                       "export's)")
    group.add_argument("--no_onednn", action="store_true", help="Paddle Inference on CPU without oneDNN")
    add_allow_pickle_arg(group)
    group.add_argument("--precision", type=precision_arg, default="auto", metavar="{auto,fp32,bf16,int8}",
                       help="auto: bf16 where the CPU has avx512_bf16/AMX and the export passed the quality gate "
                       "against fp32 on the dev split, else fp32 (with --backend auto also ONNX Runtime int8 where "
                       "the CPU has VNNI, it passed and ran faster; for the fused operator its bf16 program, "
                       "likewise); bf16: the same, with a warning when it falls "
                       "back; int8: ONNX Runtime's model.int8.onnx, gated likewise (Paddle 3.3 Inference has no CPU "
                       "int8 path for this model); fp32")
    group.add_argument("--precision_data", default=None,
                       help="dev split (JSON lines {text, label}) for the quality gates when the export has not "
                       "been checked yet (default: data/dev.jsonl next to the model folder)")
    return parser


def add_allow_pickle_arg(parser) -> None:
    """`--allow_pickle` (see `ALLOW_PICKLE_HELP`), shared by the scripts that load a trained model folder."""
    parser.add_argument("--allow_pickle", action="store_true", help=ALLOW_PICKLE_HELP)


def add_explain_args(parser: argparse.ArgumentParser, html: bool = True) -> argparse.ArgumentParser:
    """The explanation flags of predict.py (`html`: also --explain_html) and evaluate.py."""
    from .explain_methods import DEFAULT_METHOD, METHODS

    group = parser.add_argument_group("explanations (a trained model folder; docs/explanations.md)")
    group.add_argument("--explain", action="store_true",
                       help="explain each prediction: its top words, and per-token scores in JSON lines")
    group.add_argument("--explain_method", choices=METHODS, default=DEFAULT_METHOD,
                       help="token importance: integrated_gradients (the most faithful measured; 16 forward and "
                       "backward passes a review), gradient, pooling or rollout (the model's own weights)")
    group.add_argument("--explain_attention", action="store_true",
                       help="in JSON lines also the model's own weights per token: pooling, alpha and beta per layer "
                       "and head")
    if html:
        group.add_argument("--explain_html", default=None, metavar="FILE",
                           help="also write one self-contained HTML page of the explained reviews (the first "
                           "1,000; implies --explain)")
    return parser
