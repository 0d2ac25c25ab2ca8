"""Does PaddleNLP's `Taskflow("text_classification", task_path=DIR)` run here? Tried on a tiny ERNIE folder (PaddleNLP's
own model) and a tiny Fastformer folder, each in a fresh process; docs/library.md quotes the outcome.

    python -m tools.check_taskflow [--output benchmarks/results/taskflow_check.json]

Prints and writes, per model: whether Taskflow answered, its error's first line, and the files Taskflow's export step
left in DIR/static. Exit status 0 either way (this records a fact about the installed PaddleNLP and Paddle).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ERNIE = """
from paddlenlp.transformers import ErnieConfig, ErnieForSequenceClassification, ErnieTokenizer
open(DIR + "/vocab.txt", "w").write("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]) + "\\n")
ErnieTokenizer(DIR + "/vocab.txt").save_pretrained(DIR)
ErnieForSequenceClassification(ErnieConfig(vocab_size=7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=32, num_labels=2)).save_pretrained(DIR)
"""
FASTFORMER = """
from fastformer import model_folder
from fastformer.tokenizer import FastformerTokenizer
tokenizer = FastformerTokenizer.build_from_corpus(["good product", "bad product"], min_freq=1)
model = model_folder.build_model(tokenizer, hidden_size=16, num_attention_heads=4, intermediate_size=32,
                                 num_hidden_layers=1, max_position_embeddings=32)
model_folder.save_model_dir(model, tokenizer, DIR)
"""
RUN = """
import json, os, sys
import fastformer
DIR = sys.argv[1]
os.makedirs(DIR, exist_ok=True)
{build}
from paddlenlp import Taskflow
try:
    answer = Taskflow("text_classification", task_path=DIR)(["good", "bad"])
    result = {{"ok": True, "answer": answer}}
except Exception as exc:
    result = {{"ok": False, "error": type(exc).__name__ + ": " + (str(exc).strip().splitlines() or [""])[0]}}
static = os.path.join(DIR, "static")
result["static_files"] = sorted(os.listdir(static)) if os.path.isdir(static) else []
print("RESULT " + json.dumps(result, default=str))
"""


def try_taskflow(build: str, folder: str) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN.format(build=build), folder], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"ok": False, "error": f"the check itself failed (exit {done.returncode}): {done.stderr[-500:]}"}
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=None, help="JSON results file")
    args = parser.parse_args(argv)
    import paddle
    import paddlenlp

    results = {"command": "python -m tools.check_taskflow" + (f" --output {args.output}" if args.output else ""),
               "paddle": paddle.__version__, "paddlenlp": paddlenlp.__version__, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("ernie", ERNIE), ("fastformer", FASTFORMER)):
            results["models"][name] = outcome = try_taskflow(build, os.path.join(tmp, name))
            print(f"{name}: {'answered ' + json.dumps(outcome['answer']) if outcome['ok'] else outcome['error']}; "
                  f"{tmp}/{name}/static: {outcome.get('static_files')}")
    if args.output:
        from fastformer.fileio import write_json

        write_json(args.output, results)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
