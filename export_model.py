"""Export a trained Fastformer model folder for Paddle Inference (and optionally ONNX), and check the export.

    python export_model.py --model_dir output/demo/model --output_dir output/demo/export
    python export_model.py --model_dir output/demo/model --output_dir output/demo/export --max_length 256 --onnx

Writes `model.json` + `model.pdiparams` (Paddle 3 PIR program; inputs `input_ids` and `attention_mask`, int64
[batch, length]; output: the logits), `config.json`, the tokenizer files and `manifest.json` to --output_dir.
The export is then loaded with Paddle Inference and compared with the dynamic model on a padded batch of reviews
of varied lengths: a max abs logits difference above 1e-5 fails the export (exit code 1, nothing exported). The
figure is printed and stored in the manifest. `--onnx` also converts the export with paddle2onnx; when that is
not possible the reason is printed and recorded, and the exit code is 3 (the Paddle export itself is valid). The
folder is built next to --output_dir and replaces it only when complete: a failed export (or re-export) leaves
--output_dir as it was.

Reduced precision: where this CPU computes bfloat16 (avx512_bf16 / AMX), the export is also run in oneDNN bf16 and
compared with fp32 on the dev split (--precision_data, default: data/dev.jsonl next to the model folder, i.e.
train.py's <output_dir>/data): the share of identical predicted ratings (at least 99.5 %) and the macro-F1 change
(at most 0.3 points) are printed and recorded in manifest.json ("quality_gate"); predictors use bf16 only where
it passed (`fastformer/inference/precision.py`). Where the CPU lacks bf16 the manifest says so and the first predictor on a
CPU that has it runs the check. `--precision fp32` skips it.
"""

from __future__ import annotations

import fastformer.env  # noqa: F401  (first, before paddle loads: MKL settings)

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from fastformer.cli import printable


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fastformer.inference.args import add_allow_pickle_arg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model_dir", required=True, help="trained model folder (train.py / task.save_model_dir)")
    parser.add_argument("--output_dir", required=True, help="export folder to write")
    parser.add_argument("--max_length", type=int, default=None,
                        help="tokens kept per text at prediction time (default: the model folder's, i.e. the training "
                        "max_length; max_position_embeddings for a folder that does not record one)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx through paddle2onnx")
    parser.add_argument("--tolerance", type=float, default=None, help="max abs logits difference allowed (1e-5)")
    from fastformer.inference.precision import precision_arg

    parser.add_argument("--precision", type=precision_arg, default="auto", metavar="{auto,fp32,bf16}",
                        help="auto/bf16: check bf16 against fp32 on the dev split where this CPU has bf16 and record "
                        "it in the manifest; fp32: no reduced-precision check")
    parser.add_argument("--precision_data", default=None,
                        help="dev split (JSON lines {text, label}) of the bf16 check (default: data/dev.jsonl next to "
                        "--model_dir)")
    add_allow_pickle_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from fastformer.inference.export import PARITY_TOLERANCE, ExportParityError, export_model

    if args.precision_data is not None and not os.path.isfile(args.precision_data):
        print(f"error: --precision_data {args.precision_data!r} does not exist", file=sys.stderr)
        return 2
    try:
        manifest = export_model(
            args.model_dir, args.output_dir, max_length=args.max_length, onnx=args.onnx,
            tolerance=PARITY_TOLERANCE if args.tolerance is None else args.tolerance, allow_pickle=args.allow_pickle,
            precision=args.precision, precision_data=args.precision_data,
        )
    except ExportParityError as exc:
        print(f"EXPORT FAILED: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # a model folder or output path that cannot be used: one line (run_main)
        from fastformer.cli import UserError

        raise UserError(str(exc)) from exc
    files = sorted(os.listdir(args.output_dir))
    print(f"exported {printable(args.model_dir)} -> {printable(args.output_dir)}: {', '.join(files)}")
    print(json.dumps({k: manifest[k] for k in ("model_file", "params_file", "input_names", "output_name",
                                               "max_length", "labels")}))
    print(f"parity: max abs logits difference {manifest['parity']['max_abs_logits_diff']:.3g} "
          f"(tolerance {manifest['parity']['tolerance']:g})")
    if args.onnx and (manifest.get("onnx") or {}).get("status") != "ok":
        print(f"ONNX: no model.onnx written: {manifest['onnx']['reason']}; the Paddle export is valid", file=sys.stderr)
        return 3
    return 0


def console_main() -> int:
    """The `fastformer-export` command (pyproject.toml): `main` with one-line errors, as `python export_model.py`."""
    from fastformer.cli import run_main

    return run_main(main)


if __name__ == "__main__":
    sys.exit(console_main())
