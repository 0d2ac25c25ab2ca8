"""Mutation check of the test suite: put one realistic porting bug at a time into a temporary copy of the repository
and run the tests that should catch it.

    python -m tools.mutation_check [--rev REV] [--only ID ...] [--output FILE] [--list]

Each mutation (`MUTATIONS` below) replaces one exact piece of source text (it must occur; the n-th occurrence when
several do) and names the test files that should fail. The copy's unmutated tests must pass first (the baseline);
a mutation counts as caught when its tests then fail (pytest exit status 1, or 2 for a collection error), not caught
when they pass or skip. `--rev REV` takes the copy from a commit (`git archive`), to compare the suite of then with
the suite of now on the same mutations; test files that commit lacks are left out. Without it the copy is the working
tree (tracked and untracked files that git does not ignore). Each run uses `OMP_NUM_THREADS=1` and writes no bytecode;
the whole check takes 10-30 minutes on 2 cores. Prints one line per mutation and writes JSON with `--output`.
Exit status: 0 when every mutation was caught and the baseline passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from typing import List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL_TESTS = ("tests/model/test_reference_numpy.py", "tests/model/test_modeling.py",
               "tests/reproduction/test_alignment.py", "tests/inference/test_export_predict.py")
TRAIN_TESTS = ("tests/training/test_train.py",)


@dataclass
class Mutation:
    id: str
    description: str
    file: str
    old: str
    new: str
    tests: Tuple[str, ...]
    occurrence: int = 1  # which occurrence of `old` is replaced (1 = the first)
    listed: bool = False  # one of the bugs listed as once not caught by the suite


MUTATIONS: List[Mutation] = [
    # ---- the bugs once not caught by the suite
    Mutation("gelu_tanh_eval", "tanh-approximate GELU on the eval/export path", "fastformer/cpu_layers.py",
             "        return F.gelu(x)\n", "        return F.gelu(x, approximate=True)\n", MODEL_TESTS, listed=True),
    Mutation("ln_eps_embeddings", "embedding LayerNorm with Paddle's default epsilon 1e-5, not the config's",
             "fastformer/modeling.py", "LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)",
             "LayerNorm(config.hidden_size, epsilon=1e-5)", MODEL_TESTS, occurrence=1, listed=True),
    Mutation("ln_eps_sublayer", "sub-layer (post-LN) LayerNorm with epsilon 1e-5, not the config's",
             "fastformer/modeling.py", "LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)",
             "LayerNorm(config.hidden_size, epsilon=1e-5)", MODEL_TESTS, occurrence=2, listed=True),
    Mutation("no_scaling", "no 1/sqrt(d) scaling of the additive-attention scores", "fastformer/modeling.py",
             "self.scale = 1.0 / math.sqrt(self.head_size)", "self.scale = 1.0", MODEL_TESTS, listed=True),
    Mutation("head_split_per_head", "hidden split as [D, N] instead of [N, D] on the per-head (export/GPU) path",
             "fastformer/modeling.py", "heads = x.reshape([0, 0, n, d]).transpose([0, 2, 1, 3])",
             "heads = x.reshape([0, 0, d, n]).transpose([0, 3, 1, 2])", MODEL_TESTS, listed=True),
    Mutation("sampling_always_balanced", "Trainer ignores --sampling: always class-balanced", "fastformer/training/trainer.py",
             'balanced=self.args.sampling == "balanced",', "balanced=True,", TRAIN_TESTS, listed=True),
    Mutation("sampling_never_balanced", "Trainer ignores --sampling: never class-balanced", "fastformer/training/trainer.py",
             'balanced=self.args.sampling == "balanced",', "balanced=False,", TRAIN_TESTS, listed=True),
    Mutation("no_epoch_sampler", "Trainer does not use EpochBatchSampler (PaddleNLP's default sampler)",
             "fastformer/training/trainer.py", "def _get_train_sampler(self):", "def _unused_train_sampler(self):",
             TRAIN_TESTS, listed=True),
    Mutation("no_remainder_rotation", "the sampler's n % C extra draws always go to the same classes",
             "fastformer/training/sampler.py", "extra = (np.arange(c) - epoch) % c < n % c", "extra = np.arange(c) < n % c",
             TRAIN_TESTS, listed=True),
    Mutation("parity_always_zero", "export parity computed as zero whatever the outputs", "fastformer/inference/export.py",
             "worst = max(worst, float(np.abs(out - ref).max()))",
             "worst = max(worst, float(np.abs(ref - ref).max()))", ("tests/inference/test_export_predict.py",), listed=True),
    Mutation("import_error_export_script", "an import error in export_model.py (tests/inference/test_evaluate.py alone)",
             "export_model.py", "from typing import Optional, Sequence\n",
             "from typing import Optional, Sequence\nfrom fastformer.tokenizer import FastformerTokeniser\n",
             ("tests/inference/test_evaluate.py",), listed=True),
    # ---- further realistic bugs (caught by the suite of then too: they must stay caught)
    Mutation("gelu_tanh_train", "tanh-approximate GELU on the training path", "fastformer/cpu_layers.py",
             "return F.gelu(x)  # exact (erf) GELU", "return F.gelu(x, approximate=True)", MODEL_TESTS),
    Mutation("mask_inverted", "additive mask built from the mask, not 1 - mask", "fastformer/modeling.py",
             "return (1.0 - attention_mask.astype(dtype).unsqueeze(1)) * MASK_VALUE",
             "return attention_mask.astype(dtype).unsqueeze(1) * MASK_VALUE", MODEL_TESTS),
    Mutation("no_query_residual", "attention output without the + q residual", "fastformer/modeling.py",
             "return self.transform(cpu.expand(global_key, v) * v) + q", "return self.transform(cpu.expand(global_key, v) * v)",
             MODEL_TESTS),
    Mutation("global_key_from_k", "global key pooled from k instead of p = q * k", "fastformer/modeling.py",
             "global_key = self._pool(self.key_att(p), mask, p)", "global_key = self._pool(self.key_att(p), mask, k)",
             MODEL_TESTS),
    Mutation("value_is_key", "value = key instead of value = query", "fastformer/modeling.py",
             "v = q if self.value is None else", "v = k if self.value is None else", MODEL_TESTS),
    Mutation("pre_layer_norm", "LayerNorm before the residual add (pre-LN) instead of after it",
             "fastformer/modeling.py", "return self.layer_norm(self.dropout(self.dense(hidden_states)) + input_tensor)",
             "return self.layer_norm(self.dropout(self.dense(hidden_states))) + input_tensor", MODEL_TESTS),
    Mutation("pooler_no_tanh", "attention pooler without its tanh", "fastformer/modeling.py",
             "self.att_fc2(paddle.tanh(self.att_fc1(hidden_states)))", "self.att_fc2(self.att_fc1(hidden_states))",
             MODEL_TESTS),
    Mutation("block_diagonal_order", "block-diagonal pooling (CPU dygraph path) returns [D, N] column order",
             "fastformer/modeling.py", "return paddle.diagonal(pooled, axis1=1, axis2=2).transpose([0, 2, 1])",
             "return paddle.diagonal(pooled, axis1=1, axis2=2)", MODEL_TESTS),
    Mutation("dropout_in_eval", "dropout still active in eval mode", "fastformer/cpu_layers.py",
             "if not self.training or self.p == 0:", "if self.p == 0:", MODEL_TESTS),
    Mutation("weighted_loss_unweighted", "--sampling weighted_loss trains with the plain loss",
             "fastformer/training/trainer.py", "if self.loss_weights is None or not model.training:",
             "if True:", TRAIN_TESTS),
    Mutation("sampler_ignores_epoch", "the sampler's shuffle ignores the epoch", "fastformer/training/sampler.py",
             "rng = np.random.default_rng([self.seed, 0, epoch])", "rng = np.random.default_rng([self.seed, 0])",
             TRAIN_TESTS),
]


# ------------------------------------------------------------------------------------------------------ the copy
def copy_repo(dest: str, rev: Optional[str]) -> None:
    if rev:
        archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", rev], check=True,
                                 capture_output=True).stdout
        tar_path = os.path.join(dest, ".repo.tar")
        with open(tar_path, "wb") as f:
            f.write(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="data")
        os.remove(tar_path)
        return
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def apply(mutation: Mutation, repo: str) -> str:
    """Mutate the copy; returns the original text of the file."""
    path = os.path.join(repo, mutation.file)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    starts = [m.start() for m in re.finditer(re.escape(mutation.old), text)]
    if len(starts) < mutation.occurrence:
        raise ValueError(f"{mutation.id}: occurrence {mutation.occurrence} of {mutation.old!r} not in {mutation.file}")
    at = starts[mutation.occurrence - 1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:at] + mutation.new + text[at + len(mutation.old):])
    return text


def run_tests(repo: str, tests: Sequence[str], timeout: float) -> dict:
    present = [t for t in tests if os.path.isfile(os.path.join(repo, t))]
    if not present:
        return {"rc": None, "seconds": 0.0, "tests": [], "failed": [], "summary": "no test file present"}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=repo)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *present],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = "timeout", exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
    lines = out.strip().splitlines()
    failed = [line.split(" - ")[0] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return {"rc": rc, "seconds": round(time.perf_counter() - start, 1), "tests": present, "failed": failed[:3],
            "summary": lines[-1] if lines else ""}


def imported_from(repo: str) -> str:
    env = dict(os.environ, PYTHONPATH=repo, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", "import fastformer, os; print(os.path.dirname(fastformer.__file__))"],
                         cwd=repo, env=env, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()[-300:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--rev", default=None, help="take the repository (tests included) from this commit")
    parser.add_argument("--only", nargs="*", default=None, help="mutation ids to run (default: all)")
    parser.add_argument("--output", default=None, help="write the results as JSON to this file")
    parser.add_argument("--tests", nargs="*", default=None,
                        help="run only these of each mutation's test files (a quicker, partial check)")
    parser.add_argument("--no_baseline", action="store_true",
                        help="skip the unmutated run (only when the same tests just passed on the same tree)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per pytest run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)

    mutations = [m for m in MUTATIONS if args.only is None or m.id in args.only]
    if args.tests is not None:
        mutations = [replace(m, tests=tuple(t for t in m.tests if t in args.tests)) for m in mutations]
    if args.list or not mutations:
        for m in MUTATIONS:
            print(f"{m.id:28s} {'listed' if m.listed else '      '}  {m.file}: {m.description}")
        return 0 if args.list else 1

    results = []
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as repo:
        copy_repo(repo, args.rev)
        where = imported_from(repo)
        if os.path.realpath(where) != os.path.realpath(os.path.join(repo, "fastformer")):
            print(f"the copy imports fastformer from {where}, not from {repo}: stopping", file=sys.stderr)
            return 1
        for m in mutations:  # every replacement applies to this copy, before anything runs
            original = apply(m, repo)
            with open(os.path.join(repo, m.file), "w", encoding="utf-8") as f:
                f.write(original)
        all_tests = sorted({t for m in mutations for t in m.tests})
        print(f"copy of {args.rev or 'the working tree'} in {repo}; baseline: {' '.join(all_tests)}", flush=True)
        baseline = {"rc": "skipped"} if args.no_baseline else run_tests(repo, all_tests, args.timeout)
        print(f"baseline: rc {baseline['rc']} in {baseline.get('seconds')} s: {baseline.get('summary')}", flush=True)
        for m in mutations:
            original = apply(m, repo)
            try:
                run = run_tests(repo, m.tests, args.timeout)
            finally:
                with open(os.path.join(repo, m.file), "w", encoding="utf-8") as f:
                    f.write(original)
            caught = run["rc"] in (1, 2)
            results.append({**asdict(m), **run, "caught": caught})
            print(f"{m.id:28s} {'caught' if caught else 'NOT CAUGHT':10s} rc {run['rc']!s:7s} {run['seconds']:6.1f} s  "
                  f"{(run['failed'] or [run['summary']])[0]}", flush=True)

    payload = {"rev": args.rev or "working tree", "command": " ".join(["python", "tools/mutation_check.py",
                                                                        *(sys.argv[1:] if argv is None else argv)]),
               "baseline": baseline,
               "caught": sum(r["caught"] for r in results), "total": len(results), "mutations": results}
    print(f"caught {payload['caught']} of {payload['total']} (baseline rc {baseline['rc']})")
    if args.output:
        from fastformer.fileio import write_json

        write_json(args.output, payload)
    return 0 if baseline["rc"] == 0 and payload["caught"] == payload["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
