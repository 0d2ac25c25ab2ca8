"""Inference throughput (reviews/s) end to end from raw text: the default serving path (`--backend auto --precision
auto`, with and without onnxruntime installed), Paddle Inference (oneDNN fp32, oneDNN bf16, no oneDNN), Paddle
dygraph, ONNX Runtime fp32 (`--backend onnxruntime`, when installed: `pip install -r benchmarks/requirements.txt`) and
as anchors PyTorch eager (fp32 and bf16 autocast, `reproduction.torch_reference`), on CPU.

The model: by default the paper-size classifier (hidden 256, 2 layers, 16 heads, intermediate 256) with random
weights, its vocabulary built from synthetic demo reviews (`fastformer_data.generate_demo_reviews`), texts of demo
reviews joined and cut to 120-128 tokens; with `--model_dir` and `--dev_file`, a trained model folder and texts from
its dev split (the dev split also feeds the quality gates, run once at export, that decide the default serving path;
without one it is Paddle Inference fp32). Every figure is end to end as `predict.py` and `serve.py` see it: tokenize,
sort by length, pad, forward, softmax; the PyTorch rows run the same pipeline around the reference model holding the
same weights. Batch 1 (one review per call) and batch 64. Each case runs in its own child process (OMP/MKL threads =
--threads, MKL_DEBUG_CPU_TYPE=5), all cases in turn for --rounds rounds; the "x PyTorch" and "x ORT" ratios are taken
within each round and their median reported. `--isa avx2` limits oneDNN, MKL and PyTorch to AVX2 (ONEDNN_MAX_CPU_ISA,
MKL_ENABLE_INSTRUCTIONS, ATEN_CPU_CAPABILITY): an AVX2-only CPU emulated on this one; ONNX Runtime's MLAS has no such
limit and keeps its AVX-512 kernels.

bf16 rows run only where the CPU computes bfloat16 natively (avx512_bf16 / AMX); elsewhere the row is skipped with
the reason. The JSON records the CPU model, its flags and what Paddle's oneDNN build detects ("setup" ->
"cpu_features"), and the quality gates' records ("setup" -> "quality_gates").

    python -m benchmarks.bench_inference --output benchmarks/results/inference_cpu.json      # ~3 min
    python -m benchmarks.bench_inference --model_dir MODEL_DIR --dev_file DEV_FILE --cases default,default_paddle,\
        inference_onednn,inference_bf16,fused,fused_bf16,onnxruntime,onnxruntime_int8,torch --rounds 3 \
        --batch_sizes 1,4,8,64 --output benchmarks/results/inference_speed_cpu.json
    python -m benchmarks.bench_inference ... --isa avx2 --output benchmarks/results/inference_speed_avx2.json

On a machine other processes share the figures are noisy: `load_average_1_5_15min` in the JSON says how busy it was;
compare the ratios of one run. The paths given to --model_dir / --dev_file are not written to the results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from typing import List, Optional, Sequence


from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = ("default", "default_paddle", "inference_onednn", "inference_bf16", "inference_plain", "fused", "fused_bf16",
         "dygraph",
         "torch", "torch_bf16", "onnxruntime", "onnxruntime_int8")
CASE_NAMES = {
    "default": "default serving path (auto, with onnxruntime)",
    "default_paddle": "default serving path (auto, project install)",
    "inference_onednn": "Paddle Inference + oneDNN",
    "inference_bf16": "Paddle Inference + oneDNN bf16",
    "inference_plain": "Paddle Inference, no oneDNN",
    "fused": "Paddle Inference, fused operator (fp32)",
    "fused_bf16": "Paddle Inference, fused operator (bf16)",
    "dygraph": "Paddle dygraph",
    "torch": "PyTorch eager",
    "torch_bf16": "PyTorch eager, bf16 autocast",
    "onnxruntime": "ONNX Runtime fp32",
    "onnxruntime_int8": "ONNX Runtime int8 (dynamic quantization)",
}
TORCH_CASES = ("torch", "torch_bf16")
DEFAULT_CASES = ("default", "default_paddle")
# --isa avx2: what an AVX2-only CPU runs, emulated on this one (ONNX Runtime's MLAS has no such limit)
ISA_ENV = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                    "ATEN_CPU_CAPABILITY": "avx2"}}
CHECK_TEXTS = 16  # probabilities of this many texts are compared across backends


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--cases", default=",".join(CASES), help=f"comma separated, from {','.join(CASES)}")
    p.add_argument("--batch_sizes", default="1,64")
    p.add_argument("--num_texts", type=int, default=256, help="texts per timed pass at batch sizes > 1")
    p.add_argument("--num_texts_b1", type=int, default=32, help="texts per timed pass at batch size 1")
    p.add_argument("--steps", type=int, default=4, help="timed passes over the texts (fastest and median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seq_len", type=int, default=128, help="max_length; texts have seq_len-8 .. seq_len tokens")
    p.add_argument("--hidden_size", type=int, default=256)
    p.add_argument("--num_layers", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=16)
    p.add_argument("--intermediate_size", type=int, default=256)
    p.add_argument("--corpus_reviews", type=int, default=3000, help="demo reviews the vocabulary is built from")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of all cases in turn; ratios are taken within a round (paired), then the median")
    p.add_argument("--model_dir", default=None,
                   help="a trained model folder to benchmark instead of the random model (its texts: --dev_file)")
    p.add_argument("--dev_file", default=None,
                   help="with --model_dir: its dev split (JSON lines text/label): the benchmark texts and the quality "
                   "gates of the default serving path")
    p.add_argument("--isa", choices=("native",) + tuple(ISA_ENV), default="native",
                   help="avx2: limit oneDNN, MKL and PyTorch to AVX2 (an AVX2-only CPU, emulated)")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--child_case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work_dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_output", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------- children
def prepare(args) -> dict:
    """Demo corpus -> tokenizer, random paper-size model folder, its export, and the benchmark texts."""
    import paddle

    from fastformer_data.demo_data import generate_demo_reviews
    from fastformer.inference import precision
    from fastformer import encoding, model_folder
    from fastformer.inference.export import export_model
    from fastformer.tokenizer import FastformerTokenizer

    work = args.work_dir
    model_dir, export_dir = os.path.join(work, "model"), os.path.join(work, "export")
    dev_file = os.path.join(work, "data", "dev.jsonl")  # next to the export: where its quality gates look
    if getattr(args, "model_dir", None):  # a trained model: its own vocabulary, its dev reviews as texts
        import shutil

        from fastformer.splits import read_split

        shutil.copytree(args.model_dir, model_dir)
        os.makedirs(os.path.dirname(dev_file))
        shutil.copyfile(args.dev_file, dev_file)
        reviews = read_split(dev_file)[0]
        model, tokenizer = model_folder.load_model_dir(model_dir)
    else:
        corpus_file = os.path.join(work, "demo_reviews.json")
        generate_demo_reviews(corpus_file, args.corpus_reviews, seed=args.seed + 1, fmt="2014")
        with open(corpus_file, encoding="utf-8") as f:
            reviews = [json.loads(line)["reviewText"] for line in f if line.strip()]
        tokenizer = FastformerTokenizer.build_from_corpus(reviews, min_freq=1)
        paddle.seed(args.seed)
        model = model_folder.build_model(
            tokenizer, hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
            num_attention_heads=args.num_heads, intermediate_size=args.intermediate_size,
        )
        model_folder.save_model_dir(model, tokenizer, model_dir)
    t0 = time.perf_counter()
    cases = args.cases.split(",")
    wants_onnx = bool({"onnxruntime", "onnxruntime_int8", "default"} & set(cases))
    # the quality gates of the default serving path run here (a dev split is needed: trained model only)
    gates = bool(set(DEFAULT_CASES) & set(cases)) and os.path.isfile(dev_file)
    manifest = export_model(model_dir, export_dir, max_length=args.seq_len, log=lambda *a: None, onnx=wants_onnx,
                            precision="auto" if gates else "fp32", precision_data=dev_file if gates else None)
    export_s = time.perf_counter() - t0

    rng = random.Random(args.seed)
    texts: List[str] = []
    need = max(args.num_texts, args.num_texts_b1, CHECK_TEXTS)
    while len(texts) < need:
        target = rng.randint(args.seq_len - 8, args.seq_len)
        tokens: List[str] = []
        while len(tokens) < target:
            tokens += tokenizer.tokenize(rng.choice(reviews))
        texts.append(" ".join(tokens[:target]))
    with open(os.path.join(work, "texts.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f)
    lengths = [len(ids) for ids in encoding.encode_texts(tokenizer, texts, args.seq_len)]
    t0 = time.perf_counter()
    encoding.encode_texts(tokenizer, texts, args.seq_len)
    tokenize_s = time.perf_counter() - t0
    return {
        "vocab_size": len(tokenizer),
        "num_params": int(sum(p.size for p in model.parameters())),
        "export_s": round(export_s, 2),
        "export_parity_max_abs_logits_diff": manifest["parity"]["max_abs_logits_diff"],
        "text_tokens_min_mean_max": [min(lengths), round(sum(lengths) / len(lengths), 1), max(lengths)],
        "tokenize_reviews_per_s": round(len(texts) / tokenize_s, 1),
        "onnx": manifest.get("onnx"),
        "graph": manifest.get("graph"),
        "quality_gates": manifest.get("quality_gate"),
        "cpu_features": precision.cpu_features(),
        "bf16_native": precision.bf16_support()[0],
        "int8": precision.INT8_UNAVAILABLE.format(version=paddle.__version__),
    }


class PipelinePredictor:
    """The Predictor's pipeline (tokenize, sort by length, split into passes by `length_groups`, pad, forward,
    softmax) around another engine's `_probs(input_ids, attention_mask)`."""

    def __init__(self, tokenizer, max_length: int, batch_size: int, num_labels: int):
        from fastformer.inference.predictor import PAD_MULTIPLE

        self.tokenizer, self.num_labels = tokenizer, num_labels
        self.pad_id, self.pad_multiple = tokenizer.pad_token_id, PAD_MULTIPLE
        self.max_length, self.batch_size = max_length, batch_size

    def predict_proba(self, texts):
        import numpy as np

        from fastformer import encoding

        from fastformer.inference.predictor import length_groups

        ids = encoding.encode_texts(self.tokenizer, texts, self.max_length)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), self.num_labels), dtype=np.float32)
        for start, stop in length_groups([len(ids[i]) for i in order], self.batch_size):
            rows = order[start:stop]
            out[rows] = self._probs(*encoding.pad_batch([ids[i] for i in rows], self.pad_id, self.pad_multiple))
        return out


class TorchPredictor(PipelinePredictor):
    """The PyTorch reference model holding the same weights; `bf16`: under `torch.autocast("cpu", bfloat16)`."""

    def __init__(self, model_dir: str, max_length: int, batch_size: int, threads: int, bf16: bool = False):
        import numpy as np
        import torch

        from fastformer import convert
        from fastformer import model_folder
        from reproduction.torch_reference import Model, TorchFastformerConfig

        torch.set_num_threads(threads)
        paddle_model, tokenizer = model_folder.load_model_dir(model_dir)
        c = paddle_model.config
        self.model = Model(TorchFastformerConfig(
            vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
            hidden_act=c.hidden_act, max_position_embeddings=c.max_position_embeddings,
            layer_norm_eps=c.layer_norm_eps, num_labels=c.num_labels,
        ))
        paddle_sd = {k: v.numpy() for k, v in paddle_model.state_dict().items()}
        state = {}
        for name, value in self.model.state_dict().items():
            target = convert.paddle_name(name)
            array = paddle_sd[target]
            state[name] = torch.from_numpy(np.ascontiguousarray(array.T if convert.is_linear_weight(name) else array))
        self.model.load_state_dict(state)
        self.model.eval()
        self.torch, self.bf16 = torch, bf16
        super().__init__(tokenizer, max_length, batch_size, c.num_labels)

    def _probs(self, input_ids, mask):
        torch, m = self.torch, self.model
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            vec = m.fastformer_model(m.word_embedding(torch.from_numpy(input_ids)), torch.from_numpy(mask).float())
            return torch.softmax(m.dense_linear(vec).float(), dim=-1).numpy()


class OnnxRuntimePredictor(PipelinePredictor):
    """ONNX Runtime (CPU, fp32) on the export's model.onnx (`export_model.py --onnx`)."""

    def __init__(self, export_dir: str, max_length: int, batch_size: int, threads: int):
        import onnxruntime as ort

        from fastformer import model_folder
        from fastformer.configuration import FastformerConfig

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(os.path.join(export_dir, "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        config = FastformerConfig.from_pretrained(export_dir)
        super().__init__(model_folder.load_tokenizer(export_dir, config), max_length, batch_size, config.num_labels)

    def _probs(self, input_ids, mask):
        from fastformer.inference.predictor import softmax

        feeds = dict(zip(self.input_names, (input_ids.astype("int64"), mask.astype("int64"))))
        return softmax(self.session.run(None, feeds)[0])


def run_case(args) -> dict:
    import numpy as np

    threads = args.threads or os.cpu_count() or 1
    with open(os.path.join(args.work_dir, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    model_dir, export_dir = os.path.join(args.work_dir, "model"), os.path.join(args.work_dir, "export")
    case = args.child_case

    def make(batch_size):
        if case in TORCH_CASES:
            return TorchPredictor(model_dir, args.seq_len, batch_size, threads, bf16=case == "torch_bf16")
        from fastformer.inference.loader import load_predictor

        if case in ("onnxruntime", "onnxruntime_int8"):
            return load_predictor(export_dir, backend="onnxruntime", batch_size=batch_size, num_threads=threads,
                                  precision="int8" if case.endswith("int8") else "fp32",
                                  quality_gate=False)  # speed only; the default cases are gated
        if case in DEFAULT_CASES:
            if case == "default_paddle":  # as installed by requirements.txt: no onnxruntime
                from fastformer.inference import gate, loader, runners

                for module in (gate, loader, runners):
                    module.onnxruntime_missing = lambda: runners.ONNXRUNTIME_MISSING
            return load_predictor(export_dir, batch_size=batch_size, num_threads=threads)  # --backend/--precision auto

        if case in ("fused", "fused_bf16"):
            return load_predictor(export_dir, backend="fused", batch_size=batch_size, num_threads=threads,
                                  precision="bf16" if case == "fused_bf16" else "fp32",
                                  quality_gate=False)  # speed only; the default cases are gated
        if case == "dygraph":
            return load_predictor(model_dir, backend="dynamic", batch_size=batch_size, max_length=args.seq_len,
                             num_threads=threads)
        return load_predictor(export_dir, backend="inference", batch_size=batch_size, num_threads=threads,
                         enable_mkldnn=case != "inference_plain", precision="bf16" if case == "inference_bf16" else
                         "fp32", quality_gate=False)  # random weights, no dev split: speed only

    result = {"case": case, "threads": threads, "runs": []}
    if case in ("onnxruntime", "onnxruntime_int8", "default") and not os.path.isfile(
            os.path.join(export_dir, "model.onnx")):
        return {**result, "skipped": "no model.onnx: the ONNX conversion failed (setup -> onnx)"}
    if case == "onnxruntime_int8" and not os.path.isfile(os.path.join(export_dir, "model.int8.onnx")):
        return {**result, "skipped": "no model.int8.onnx (setup -> onnx -> int8)"}
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    predictor = None
    for batch_size in batch_sizes:
        if predictor is None:
            import warnings

            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                predictor = make(batch_size)
            if case == "inference_bf16" and predictor.precision != "bf16":
                return {**result, "skipped": predictor.precision_note}  # never fp32 under a bf16 label
            result["runs_on"] = {key: getattr(predictor, key, None) for key in ("backend", "precision",
                                                                                  "precision_note", "small_batch")}
        predictor.batch_size = batch_size
        n = args.num_texts_b1 if batch_size == 1 else args.num_texts
        subset = texts[:n]
        timing = common.time_calls(lambda: predictor.predict_proba(subset), steps=args.steps, warmup=args.warmup)
        tokens = sum(min(len(t.split()), args.seq_len) for t in subset)
        result["runs"].append({
            "batch_size": batch_size,
            "num_texts": n,
            "reviews_per_s_best": n / timing["min_s"],
            "reviews_per_s_median": n / timing["median_s"],
            "tokens_per_s_best": tokens / timing["min_s"],
            "ms_per_batch_best": 1000 * timing["min_s"] / -(-n // batch_size),
            "cores_used": timing["cores_used"],
            "times_s": timing["times_s"],
        })
    result["check_probs"] = np.asarray(predictor.predict_proba(texts[:CHECK_TEXTS])).tolist()
    result["peak_rss_mib"] = round(common.peak_rss_mib(), 1)
    return result


def child_main(args) -> None:
    common.quiet_paddle()
    result = prepare(args) if args.child_case == "prepare" else run_case(args)
    common.write_child_output(args.child_output, result)


# ------------------------------------------------------------------------------------------------------- parent
def forward_args(args) -> List[str]:
    keys = ("cases", "batch_sizes", "num_texts", "num_texts_b1", "steps", "warmup", "seq_len", "hidden_size",
            "num_layers", "num_heads", "intermediate_size", "corpus_reviews", "threads", "seed", "isa")
    out = [x for k in keys for x in (f"--{k}", str(getattr(args, k)))]
    if args.model_dir:
        out += ["--model_dir", os.path.abspath(args.model_dir), "--dev_file", os.path.abspath(args.dev_file)]
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.child_case:
        child_main(args)
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases {sorted(unknown)}; choose from {CASES}")
    import importlib.util

    if set(TORCH_CASES) & set(cases):
        missing = None
        if importlib.util.find_spec("torch") is None:
            missing = "torch is not installed"
        elif not os.path.isfile(os.path.join(common.ROOT, "reproduction", "torch_reference.py")):
            missing = "reproduction/torch_reference.py is absent"
        if missing:
            print(f"skipping the PyTorch rows: {missing}")
            cases = [c for c in cases if c not in TORCH_CASES]
    if importlib.util.find_spec("onnxruntime") is None:
        for case in ("onnxruntime", "onnxruntime_int8", "default"):
            if case in cases:
                print(f"skipping the {CASE_NAMES[case]} row: onnxruntime is not installed "
                      "(pip install -r benchmarks/requirements.txt)")
                cases.remove(case)
    if bool(args.model_dir) != bool(args.dev_file):
        raise SystemExit("--model_dir and --dev_file go together")
    args.cases = ",".join(cases)  # the children see what runs (prepare converts to ONNX only when needed)
    env = dict(common.cpu_env(args.threads), **ISA_ENV.get(args.isa, {}))
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as work:
        print("preparing: demo corpus, tokenizer, random paper-size model, export ...", flush=True)
        setup = common.run_child(__file__, forward_args(args) + ["--child_case", "prepare", "--work_dir", work],
                                 env=env)
        if "error" in setup:
            print(setup["log_tail"])
            return 1
        print(f"  vocab {setup['vocab_size']}, {setup['num_params']:,} parameters, export {setup['export_s']} s "
              f"(parity {setup['export_parity_max_abs_logits_diff']:.2g}), text tokens min/mean/max "
              f"{setup['text_tokens_min_mean_max']}", flush=True)
        for round_ in range(args.rounds):  # every case in turn, then again: a busy machine slows each alike
            for case in cases:
                if round_ and ("error" in results[case] or "skipped" in results[case]):
                    continue
                print(f"round {round_ + 1}/{args.rounds}: {CASE_NAMES[case]} ...", flush=True)
                res = common.run_child(__file__, forward_args(args) + ["--child_case", case, "--work_dir", work],
                                       env=env)
                if round_ == 0:
                    results[case] = res
                    results[case]["rounds"] = [res.get("runs", [])]
                elif "error" not in res:
                    results[case]["rounds"].append(res["runs"])
                if "error" in res:
                    print(f"  failed: {res['error']}\n{res['log_tail']}")
                elif "skipped" in res:
                    print(f"  skipped: {res['skipped']}")

    import numpy as np

    reference = np.asarray(results.get("dygraph", {}).get("check_probs", []) or [])
    rows = []
    for case, res in results.items():
        if "error" in res or "skipped" in res:
            continue
        diff = None
        if reference.size and res.get("check_probs"):
            diff = float(np.abs(np.asarray(res["check_probs"]) - reference).max())
        res["max_abs_prob_diff_vs_dygraph"] = diff
        for i, run in enumerate(res["runs"]):
            b = run["batch_size"]

            def per_round(other):  # this case's best reviews/s over `other`'s, round by round (paired)
                mine = [r[i]["reviews_per_s_best"] for r in res["rounds"] if len(r) > i]
                theirs = [r[i]["reviews_per_s_best"] for r in results.get(other, {}).get("rounds", []) if len(r) > i]
                ratios = [m / t for m, t in zip(mine, theirs)]
                return statistics.median(ratios) if ratios else None

            best = [r[i]["reviews_per_s_best"] for r in res["rounds"] if len(r) > i]
            rows.append({
                "backend": CASE_NAMES[case], "batch": b, "runs_on": "{backend} {precision}".format(
                    **res["runs_on"]) if res.get("runs_on", {}).get("backend") else "",
                "best": max(best), "median": statistics.median(best),
                "tokens": run["tokens_per_s_best"], "ms": run["ms_per_batch_best"], "cores": run["cores_used"],
                "speedup": per_round("dygraph"), "vs_torch": per_round("torch"), "vs_ort": per_round("onnxruntime"),
                "diff": diff,
            })
    rows.sort(key=lambda r: (r["batch"], -r["best"]))
    print()
    print(common.format_table(rows, [
        ("backend", "backend", None), ("runs_on", "runs on", None), ("batch", "batch", "d"),
        ("best", "reviews/s (best)", ".1f"), ("median", "reviews/s (median of rounds)", ".1f"),
        ("ms", "ms/batch", ".2f"), ("cores", "cores used", ".2f"), ("vs_torch", "x PyTorch", ".2f"),
        ("vs_ort", "x ORT", ".2f"), ("diff", "max |dp| vs dygraph", ".1e"),
    ]))
    header = common.result_header("inference", __file__, args, argv)
    for key, placeholder in (("model_dir", "MODEL_DIR"), ("dev_file", "DEV_FILE")):  # a private model's paths
        if getattr(args, key):
            header["command"] = header["command"].replace(getattr(args, key), placeholder)
            header["settings"][key] = placeholder
    machine = header["machine"]
    features = setup.get("cpu_features", {})
    print(f"\nCPU flags {features.get('flags')}, Paddle/oneDNN detects {features.get('paddle')}; int8: not run "
          "(see the JSON's setup -> int8)")
    print(f"{machine['cpu']}, {machine['cores']} cores, threads {env['OMP_NUM_THREADS']}, load average "
          f"{machine['load_average_1_5_15min']} (figures are noisy when other processes share the CPU); "
          f"{time.perf_counter() - start:.0f} s")
    payload = {
        **header,
        "description": "end-to-end reviews/s of Predictor.predict_proba from raw text (tokenize, sort, pad, forward, "
                       "softmax); " + ("a trained model, texts from its dev split" if args.model_dir else
                                       "random-weight paper-size model") + (
                           "; oneDNN, MKL and PyTorch limited to AVX2 (an AVX2-only CPU emulated; ONNX Runtime's "
                           "MLAS is not limited)" if args.isa == "avx2" else ""),
        "versions": common.versions("paddle", "paddlenlp", "numpy", "torch", "onnxruntime"),
        "env": env,
        "setup": setup,
        "results": {case: {k: v for k, v in res.items() if k != "check_probs"} for case, res in results.items()},
        "table": rows,
    }
    common.write_json(args.output, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
