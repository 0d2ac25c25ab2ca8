"""What the checks of a received folder cost when it loads (`fastformer.weight_files`), at the paper's size.

A random classifier of the paper's Amazon setting (hidden 256, 2 layers, 16 heads, intermediate 256, 512 positions,
a 19,843-word vocabulary as on real reviews: 6.1M parameters) is saved as a model folder and exported. Timed, best
of `--rounds` (one thread, in this process after a warm-up):

* `check_model_files`: config.json's values, the safetensors header against it, every tensor finite;
  `load_model_dir`: all of loading the folder, checks included;
* `check_export_files`: the export's config.json against the manifest and the params' shapes (read from
  `model.pdiparams`), every tensor finite; `Predictor`: all of opening the export, checks included.

    python -m benchmarks.bench_load_checks --output_dir benchmarks/results    # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Optional, Sequence


from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))

os.environ.update(common.cpu_env(1))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab_size", type=int, default=19843, help="vocabulary size (the paper-size run's)")
    p.add_argument("--rounds", type=int, default=5, help="timed calls of each (the best is reported)")
    p.add_argument("--output_dir", default=None, help="write load_checks_cpu.json/.md here")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    header = common.result_header("load_checks", __file__, args, argv)
    import paddle

    from fastformer import weight_files
    from fastformer.inference import precision
    from fastformer import model_folder
    from fastformer.inference.export import export_model
    from fastformer.inference.folders import MANIFEST_FILE, find_model_files
    from fastformer.inference.loader import load_predictor
    from fastformer.tokenizer import FastformerTokenizer

    with tempfile.TemporaryDirectory() as work:
        words = [f"w{i}" for i in range(args.vocab_size - 2)]  # + [PAD], [UNK]
        tokenizer = FastformerTokenizer.build_from_corpus([" ".join(words)], min_freq=1)
        paddle.seed(0)
        model = model_folder.build_model(tokenizer, hidden_size=256, num_hidden_layers=2, num_attention_heads=16,
                                 intermediate_size=256, max_position_embeddings=512)
        model_dir, export_dir = os.path.join(work, "model"), os.path.join(work, "export")
        model_folder.save_model_dir(model, tokenizer, model_dir, max_length=512)
        export_model(model_dir, export_dir, log=lambda *a: None, precision="fp32", parity_texts=["w1 w2 w3"])
        with open(os.path.join(export_dir, MANIFEST_FILE), encoding="utf-8") as f:
            manifest = json.load(f)
        model_file, params_file = find_model_files(export_dir, manifest)
        cases = {
            "check_model_files": lambda: weight_files.check_model_files(model_dir, model_folder.WEIGHTS_FILE),
            "load_model_dir": lambda: model_folder.load_model_dir(model_dir),
            "check_export_files": lambda: weight_files.check_export_files(export_dir, model_file, params_file,
                                                                          manifest),
            "Predictor(export)": lambda: load_predictor(export_dir, precision="fp32", num_threads=1),
        }
        sizes = {"model.safetensors": os.path.getsize(os.path.join(model_dir, model_folder.WEIGHTS_FILE)),
                 params_file: os.path.getsize(os.path.join(export_dir, params_file))}
        rows = []
        for name, fn in cases.items():
            timing = common.time_calls(fn, steps=args.rounds, warmup=1)
            rows.append({"case": name, "best_ms": 1000 * timing["min_s"], "median_ms": 1000 * timing["median_s"],
                         "times_s": timing["times_s"]})
    parameters = int(sum(p.size for p in model.parameters()))
    table = common.format_table(rows, [("case", "case", None), ("best_ms", "best ms", ".1f"),
                                       ("median_ms", "median ms", ".1f")])
    table = (f"paper-size model, {parameters:,} parameters; files {', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in sizes.items())}; "
             f"1 thread, best of {args.rounds}\n\n" + table)
    payload = {**header, "cpu_features": precision.cpu_features(), "parameters": parameters, "file_bytes": sizes,
               "rows": rows}
    if args.output_dir:
        common.write_results(args.output_dir, "load_checks_cpu", payload, table)
    else:
        print(table)
    return payload


if __name__ == "__main__":
    main()
