"""Export a trained Fastformer model folder for Paddle Inference (and optionally ONNX), and check the export.

    python export_model.py --model_dir output/demo/model --output_dir output/demo/export
    python export_model.py --model_dir output/demo/model --output_dir output/demo/export --max_length 256 --onnx

Writes `model.json` + `model.pdiparams` (Paddle 3 PIR program; inputs `input_ids` and `attention_mask`, int64
[batch, length]; output: the logits), `config.json`, the tokenizer files and `manifest.json` to --output_dir.
The export is then loaded with Paddle Inference and compared with the dynamic model on a padded batch of reviews
of varied lengths: a max abs logits difference above 1e-5 fails the export (exit code 1, no manifest). The
figure is printed and stored in the manifest. `--onnx` also converts the export with paddle2onnx; when that is
not possible the reason is printed and recorded, and the exit code is 3 (the Paddle export itself is valid).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import fastformer  # noqa: F401  (sets MKL_DEBUG_CPU_TYPE before paddle loads)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fastformer.predictor import add_allow_pickle_arg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model_dir", required=True, help="trained model folder (train.py / task.save_model_dir)")
    parser.add_argument("--output_dir", required=True, help="export folder to write")
    parser.add_argument("--max_length", type=int, default=None,
                        help="tokens kept per text at prediction time (default: the model folder's, i.e. the training "
                        "max_length; max_position_embeddings for a folder that does not record one)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx through paddle2onnx")
    parser.add_argument("--tolerance", type=float, default=None, help="max abs logits difference allowed (1e-5)")
    add_allow_pickle_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from fastformer.export import PARITY_TOLERANCE, ExportParityError, export_model

    try:
        manifest = export_model(
            args.model_dir, args.output_dir, max_length=args.max_length, onnx=args.onnx,
            tolerance=PARITY_TOLERANCE if args.tolerance is None else args.tolerance, allow_pickle=args.allow_pickle,
        )
    except ExportParityError as exc:
        print(f"EXPORT FAILED: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # a model folder or output path that cannot be used: one line (run_main)
        from fastformer.cli import UserError

        raise UserError(str(exc)) from exc
    files = sorted(os.listdir(args.output_dir))
    print(f"exported {args.model_dir} -> {args.output_dir}: {', '.join(files)}")
    print(json.dumps({k: manifest[k] for k in ("model_file", "params_file", "input_names", "output_name",
                                               "max_length", "labels")}))
    print(f"parity: max abs logits difference {manifest['parity']['max_abs_logits_diff']:.3g} "
          f"(tolerance {manifest['parity']['tolerance']:g})")
    if args.onnx and (manifest.get("onnx") or {}).get("status") != "ok":
        print("ONNX: no model.onnx written (reason above, also in manifest.json); the Paddle export is valid",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    from fastformer.cli import run_main

    sys.exit(run_main(main))
