"""Where inference time goes: per-operator profiles of the exported classifier in Paddle Inference (oneDNN fp32),
ONNX Runtime (its profiler) and PyTorch eager (torch.profiler), at batch 1 and 64, and the per-call overhead of
Paddle Inference at batch 1 (input copies, run, output copies, the Predictor's own pipeline, the first call at a
new shape, which creates oneDNN primitives).

The model is the one of `bench_inference.py` (paper size, random weights, 128 tokens); every engine gets the same
token ids. Beside the export as `export_model.py` writes it, the same model exported as its own forward runs as
"model's own graph" (Paddle Inference and ONNX Runtime), and as "before" (that graph, and glibc returning freed
activation memory to the system after each pass: Paddle Inference as it was before `inference/graph.py` and
`fastformer.env.keep_freed_memory`). Each engine runs in its own child process (OMP/MKL threads = --threads,
MKL_DEBUG_CPU_TYPE=5). The timing rounds of the children are interleaved (round 1 of every engine, then round 2,
...): on a machine other processes share, compare the engines within one run (the `x Paddle` columns), not figures of
different runs. Operator times come from each engine's own profiler, which adds its own overhead: use them for
shares, the timed rows for speed.

    python -m benchmarks.profile_inference --output_dir benchmarks/results            # ~3 min
    python -m benchmarks.profile_inference --threads 1 --stem profile_inference_1thread

ONNX Runtime rows need `pip install -r benchmarks/requirements.txt` (not a dependency of the project), PyTorch rows
requirements-dev.txt; without them their rows are skipped and say why.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

from benchmarks import common

ENGINES = ("paddle", "paddle_unfolded", "paddle_before", "onnxruntime", "onnxruntime_unfolded", "torch")
ENGINE_NAMES = {"paddle": "Paddle Inference + oneDNN fp32", "onnxruntime": "ONNX Runtime fp32",
                "paddle_unfolded": "Paddle Inference + oneDNN fp32, model's own graph",
                "paddle_before": "Paddle Inference + oneDNN fp32 as before (own graph, memory returned each pass)",
                "onnxruntime_unfolded": "ONNX Runtime fp32, model's own graph", "torch": "PyTorch eager fp32"}
# "unfolded": the export of the model's own forward (graph.LogitsModel), as exports were before graph.FoldedClassifier;
# "before": that export with glibc's default handling of freed memory too (no fastformer.env.keep_freed_memory)
# operator name (lower case, without the engine's prefix) -> category; first match wins
CATEGORIES = (
    ("gemm", ("fc", "matmul", "addmm", "linear", "gemm", "bmm", "mm", "fusedmatmul", "matmulinteger")),
    ("layer_norm", ("layer_norm", "layernorm", "layernormalization", "skiplayernormalization")),
    ("softmax", ("softmax",)),
    ("embedding", ("embedding", "gather", "index_select")),
    ("reduction", ("sum", "reducesum", "mean", "reducemean")),
    ("elementwise", ("add", "mul", "multiply", "sub", "div", "scale", "tanh", "gelu", "erf", "cast", "equal",
                     "where", "rsub", "to", "_to_copy", "pow", "sqrt", "fill", "full", "ones", "zeros", "exp",
                     "masked_fill", "biasgelu", "fastgelu", "bias_gelu")),
    ("data movement", ("transpose", "reshape", "squeeze", "unsqueeze", "slice", "split", "expand", "copy", "contiguous",
                       "clone", "view", "permute", "stack", "concat", "cat", "shape", "shape64", "layout", "arange",
                       "range",
                       "constantofshape", "select", "unbind", "empty", "as_strided", "t", "flatten")),
)


def category(op: str) -> str:
    name = op.split("::")[-1].split(".")[-1].lower().strip("_")
    for cat, names in CATEGORIES:
        if name in names or any(name.startswith(n + "_") or name.endswith("_" + n) for n in names):
            return cat
    return "other"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--engines", default=",".join(ENGINES), help=f"comma separated, from {','.join(ENGINES)}")
    p.add_argument("--batch_sizes", default="1,64")
    p.add_argument("--seq_len", type=int, default=128, help="tokens per review (every row full length)")
    p.add_argument("--calls_b1", type=int, default=100, help="forward calls per timed round at batch 1")
    p.add_argument("--calls", type=int, default=4, help="forward calls per timed round at batch sizes > 1")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output_dir", default=None, help="write <stem>.json and <stem>.md here")
    p.add_argument("--stem", default="profile_inference")
    p.add_argument("--child_engine", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work_dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_output", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------------ children
def _inputs(work: str, batch_size: int, seq_len: int, seed: int):
    """Token ids of the benchmark texts (the first `batch_size`, each at full length) and an all-ones mask."""
    import numpy as np

    with open(os.path.join(work, "ids.json"), encoding="utf-8") as f:
        ids = json.load(f)
    rows = [ids[i % len(ids)][:seq_len] for i in range(batch_size)]
    rows = [row + row[: seq_len - len(row)] * (seq_len // max(1, len(row))) for row in rows]
    input_ids = np.asarray([row[:seq_len] for row in rows], dtype=np.int64)
    return input_ids, np.ones_like(input_ids)


class PaddleEngine:
    """Paddle Inference as `fastformer.inference.runners.InferenceRunner` configures it (oneDNN, fp32)."""

    def __init__(self, export_dir: str, threads: int, cache_capacity: int = 0):
        from fastformer.inference.folders import find_model_files
        from fastformer.inference.runners import InferenceRunner

        self.export_dir, self.threads = export_dir, threads
        model_file, params_file = find_model_files(export_dir)
        self.runner = InferenceRunner(os.path.join(export_dir, model_file), os.path.join(export_dir, params_file),
                                      num_threads=threads, precision="fp32", mkldnn_cache_capacity=cache_capacity)
        self.predictor = self.runner._predictor

    def __call__(self, input_ids, mask):
        return self.runner.run(input_ids, mask)

    def profile(self, input_ids, mask, calls: int) -> Dict[str, dict]:
        import paddle.profiler as profiler
        from paddle.profiler.profiler_statistic import TracerEventType

        prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
        prof.start()
        for _ in range(calls):
            self(input_ids, mask)
        prof.stop()
        ops: Dict[str, dict] = collections.defaultdict(lambda: {"calls": 0, "us": 0.0})

        def walk(node):
            for child in node.children_node:
                if child.type == TracerEventType.Operator:
                    ops[child.name]["calls"] += 1
                    ops[child.name]["us"] += (child.end_ns - child.start_ns) / 1000.0
                else:
                    walk(child)

        for root in prof.profiler_result.get_data().values():
            walk(root)
        return dict(ops)

    def overhead(self, input_ids, mask, calls: int) -> dict:
        """Per-call split at this batch: input copies, run, output copy (median µs), and share_external_data."""
        import numpy as np
        import paddle

        p, runner = self.predictor, self.runner
        handles = [runner._inputs[name] for name in runner.input_names]
        arrays = {"input_ids": input_ids, "attention_mask": mask}
        parts = {"input_copies": [], "run": [], "output_copy": []}
        for _ in range(calls):
            t0 = time.perf_counter()
            for name, handle in zip(runner.input_names, handles):
                handle.reshape(list(arrays[name].shape))
                handle.copy_from_cpu(np.ascontiguousarray(arrays[name]))
            t1 = time.perf_counter()
            p.run()
            t2 = time.perf_counter()
            runner._output.copy_to_cpu()
            t3 = time.perf_counter()
            for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[key].append(seconds * 1e6)
        result = {key: round(statistics.median(v), 1) for key, v in parts.items()}
        tensors = [paddle.to_tensor(arrays[name]) for name in runner.input_names]
        shared = []
        for _ in range(calls):
            t0 = time.perf_counter()
            for handle, tensor in zip(handles, tensors):
                handle.share_external_data(tensor)
            p.run()
            runner._output.copy_to_cpu()
            shared.append((time.perf_counter() - t0) * 1e6)
        result["call_with_share_external_data"] = round(statistics.median(shared), 1)
        result["call_with_copies"] = round(sum(result[k] for k in parts), 1)
        return result

    def new_shapes(self, input_ids, mask, lengths: Sequence[int]) -> List[dict]:
        """First call at each new [1, length] shape against the next calls at that shape (µs): what creating the
        oneDNN primitives (and the executor's shape work) for a shape costs, in a fresh predictor."""
        fresh = PaddleEngine(self.export_dir, self.threads)
        rows = []
        for length in lengths:
            ids, m = input_ids[:1, :length], mask[:1, :length]
            t0 = time.perf_counter()
            fresh(ids, m)
            first = (time.perf_counter() - t0) * 1e6
            warm = []
            for _ in range(5):
                t0 = time.perf_counter()
                fresh(ids, m)
                warm.append((time.perf_counter() - t0) * 1e6)
            rows.append({"length": length, "first_call_us": round(first, 1),
                         "warm_call_us": round(statistics.median(warm), 1)})
        return rows

    def shape_cycle(self, input_ids, mask, lengths: Sequence[int], capacity: int) -> float:
        """Median µs per call over [1, length] shapes taken in turn, after one warm-up turn, in a fresh predictor
        whose oneDNN cache holds `capacity` shapes (0: all)."""
        fresh = PaddleEngine(self.export_dir, self.threads, cache_capacity=capacity)
        times = []
        for turn in range(4):
            for length in lengths:
                t0 = time.perf_counter()
                fresh(input_ids[:1, :length], mask[:1, :length])
                if turn:
                    times.append((time.perf_counter() - t0) * 1e6)
        return round(statistics.median(times), 1)


class OrtEngine:
    def __init__(self, export_dir: str, threads: int, profile: bool = False):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        if profile:
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(os.getcwd(), "ort_profile")
        self.session = ort.InferenceSession(os.path.join(export_dir, "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.export_dir, self.threads = export_dir, threads

    def __call__(self, input_ids, mask):
        return self.session.run(None, dict(zip(self.names, (input_ids, mask))))[0]

    def profile(self, input_ids, mask, calls: int) -> Dict[str, dict]:
        engine = OrtEngine(self.export_dir, self.threads, profile=True)
        warmup = 3
        for _ in range(warmup + calls):
            engine(input_ids, mask)
        with open(engine.session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
        runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        start = runs[warmup] if len(runs) > warmup else 0
        ops: Dict[str, dict] = collections.defaultdict(lambda: {"calls": 0, "us": 0.0})
        for e in events:
            if e.get("cat") == "Node" and e.get("ts", 0) >= start and e.get("name", "").endswith("_kernel_time"):
                name = e.get("args", {}).get("op_name", e["name"])
                ops[name]["calls"] += 1
                ops[name]["us"] += float(e.get("dur", 0))
        return dict(ops)


class TorchEngine:
    def __init__(self, model_dir: str, seq_len: int, threads: int):
        from benchmarks.bench_inference import TorchPredictor

        predictor = TorchPredictor(model_dir, seq_len, 1, threads)
        self.torch, self.model = predictor.torch, predictor.model

    def __call__(self, input_ids, mask):
        torch, m = self.torch, self.model
        with torch.inference_mode():
            vec = m.fastformer_model(m.word_embedding(torch.from_numpy(input_ids)), torch.from_numpy(mask).float())
            return m.dense_linear(vec).numpy()

    def profile(self, input_ids, mask, calls: int) -> Dict[str, dict]:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                self(input_ids, mask)
        ops = {}
        for event in prof.key_averages():
            if event.self_cpu_time_total > 0:
                ops[event.key] = {"calls": event.count, "us": float(event.self_cpu_time_total)}
        return ops


def summarize(ops: Dict[str, dict], calls: int) -> dict:
    """Per forward: operators by time, and time by category (µs, share)."""
    total = sum(o["us"] for o in ops.values()) or 1.0
    rows = sorted(({"op": name, "per_forward": round(o["calls"] / calls, 2),
                    "us_per_forward": round(o["us"] / calls, 1), "share": round(o["us"] / total, 4),
                    "category": category(name)} for name, o in ops.items()), key=lambda r: -r["us_per_forward"])
    cats: Dict[str, float] = collections.defaultdict(float)
    count: Dict[str, float] = collections.defaultdict(float)
    for r in rows:
        cats[r["category"]] += r["us_per_forward"]
        count[r["category"]] += r["per_forward"]
    return {"ops_per_forward": round(sum(r["per_forward"] for r in rows), 1),
            "op_us_per_forward": round(total / calls, 1),
            "by_category": {c: {"us_per_forward": round(v, 1), "ops_per_forward": round(count[c], 1),
                                "share": round(v * calls / total, 4)}
                            for c, v in sorted(cats.items(), key=lambda x: -x[1])},
            "ops": rows}


def child_engine(args) -> None:
    """One engine: build it, then per batch size a timing round whenever the parent writes a line, then profiles."""
    threads = args.threads or os.cpu_count() or 1
    work = args.work_dir
    export_dir, model_dir = os.path.join(work, "export"), os.path.join(work, "model")
    if args.child_engine.endswith(("_unfolded", "_before")):
        export_dir = os.path.join(work, "export_unfolded")
    if args.child_engine.endswith("_before"):
        from fastformer import env as fastformer_env

        fastformer_env._kept.append(False)  # as if keep_freed_memory never applied
    if args.child_engine.startswith("paddle"):
        engine = PaddleEngine(export_dir, threads)
    elif args.child_engine.startswith("onnxruntime"):
        engine = OrtEngine(export_dir, threads)
    else:
        engine = TorchEngine(model_dir, args.seq_len, threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    inputs = {b: _inputs(work, b, args.seq_len, args.seed) for b in batch_sizes}
    for b in batch_sizes:
        for _ in range(3):
            engine(*inputs[b])
    result = {"engine": args.child_engine, "threads": threads, "rounds": {str(b): [] for b in batch_sizes}}
    print("ready", flush=True)
    for line in sys.stdin:  # "b": one timed round at batch b; "done": profiles, then exit
        command = line.strip()
        if command == "done":
            break
        b = int(command)
        calls = args.calls_b1 if b == 1 else args.calls
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            engine(*inputs[b])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["rounds"][str(b)].append({"ms_per_forward": 1000 * wall / calls,
                                         "cpu_ms_per_forward": 1000 * cpu / calls,
                                         "page_faults_per_forward": (usage.ru_minflt - usage0.ru_minflt) / calls,
                                         "system_ms_per_forward": 1000 * (usage.ru_stime - usage0.ru_stime) / calls})
        print("ok", flush=True)
    result["profiles"] = {}
    for b in batch_sizes:
        calls = args.calls_b1 if b == 1 else args.calls
        result["profiles"][str(b)] = summarize(engine.profile(*inputs[b], calls), calls)
    if args.child_engine == "paddle":
        result["overhead_batch_1"] = engine.overhead(*inputs[1], args.calls_b1) if 1 in batch_sizes else None
        lengths = [n for n in range(16, args.seq_len + 1, 16)]
        result["new_shapes"] = engine.new_shapes(*inputs[1], lengths) if 1 in batch_sizes else None
        if 1 in batch_sizes:  # Config.set_mkldnn_cache_capacity smaller than the shapes in use: re-created kernels
            result["shape_cycle_us"] = {f"cache {c or 'unlimited'}": engine.shape_cycle(*inputs[1], lengths, c)
                                        for c in (0, len(lengths) // 2)}
        result["predictor_batch_1"] = predictor_split(work, args.seq_len, threads)
    common.write_child_output(args.child_output, result)


def predictor_split(work: str, seq_len: int, threads: int) -> dict:
    """`Predictor.predict_proba` on one review (µs, median of 50) and its parts: tokenize, pad, forward."""
    from fastformer.encoding import encode_texts, pad_batch
    from fastformer.inference.loader import load_predictor
    from fastformer.inference.predictor import PAD_MULTIPLE

    with open(os.path.join(work, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)[:50]
    predictor = load_predictor(os.path.join(work, "export"), backend="inference", batch_size=1, num_threads=threads,
                               precision="fp32")
    runner = predictor._runner
    parts = {"predict_proba": [], "tokenize": [], "pad": [], "forward": []}
    for text in texts * 2:
        t0 = time.perf_counter()
        predictor.predict_proba([text])
        t1 = time.perf_counter()
        ids = encode_texts(predictor.tokenizer, [text], seq_len)
        t2 = time.perf_counter()
        batch = pad_batch(ids, predictor.tokenizer.pad_token_id, PAD_MULTIPLE)
        t3 = time.perf_counter()
        runner.run(*batch)
        t4 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key].append(dt * 1e6)
    return {key: round(statistics.median(v[len(texts):]), 1) for key, v in parts.items()}


def prepare(args) -> dict:
    """bench_inference's model, export (with model.onnx) and texts; the texts' token ids for the engines."""
    from benchmarks import bench_inference
    from fastformer.configuration import FastformerConfig
    from fastformer.encoding import encode_texts
    from fastformer.model_folder import load_tokenizer

    ns = SimpleNamespace(work_dir=args.work_dir, corpus_reviews=3000, seed=args.seed, hidden_size=256, num_layers=2,
                         num_heads=16, intermediate_size=256, seq_len=args.seq_len, num_texts=64, num_texts_b1=1,
                         cases="onnxruntime" if "onnxruntime" in args.engines else "")
    setup = bench_inference.prepare(ns)
    export_dir = os.path.join(args.work_dir, "export")
    config = FastformerConfig.from_pretrained(export_dir)
    tokenizer = load_tokenizer(export_dir, config)
    with open(os.path.join(args.work_dir, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    with open(os.path.join(args.work_dir, "ids.json"), "w", encoding="utf-8") as f:
        json.dump(encode_texts(tokenizer, texts, args.seq_len), f)
    setup["ops_in_export"] = _graph_ops(os.path.join(export_dir, "model.json"))
    if "_unfolded" in args.engines or "_before" in args.engines:  # the model's own forward, for the before rows
        from fastformer.inference import export as export_module
        from fastformer.inference.graph import LogitsModel

        def own_forward(model):
            graph = LogitsModel(model)
            graph.eval()
            return graph

        export_module.export_graph = own_forward
        manifest = export_module.export_model(os.path.join(args.work_dir, "model"),
                                              os.path.join(args.work_dir, "export_unfolded"), max_length=args.seq_len,
                                              onnx="onnxruntime_unfolded" in args.engines, log=lambda *a: None,
                                              precision="fp32")
        setup["unfolded"] = {"graph": manifest["graph"], "parity": manifest["parity"]["max_abs_logits_diff"],
                             "ops_in_export": _graph_ops(os.path.join(args.work_dir, "export_unfolded", "model.json"))}
    return setup


def _graph_ops(model_file: str) -> Dict[str, int]:
    """Operator counts of the exported PIR program, before Paddle Inference's passes."""
    import re

    if not os.path.isfile(model_file):
        return {}
    with open(model_file, encoding="utf-8") as f:
        names = re.findall(r'"#":"1\.([A-Za-z0-9_]+)"', f.read())
    skip = {"data", "fetch", "full_int_array", "full", "a_dtype", "a_place", "a_intarray"}
    return dict(collections.Counter(n for n in names if n not in skip).most_common())


# -------------------------------------------------------------------------------------------------------- parent
def start_child(engine: str, args, work: str, env: dict, log):
    import subprocess

    child_env = dict(os.environ, **env)
    child_env["PYTHONPATH"] = common.ROOT + os.pathsep + child_env.get("PYTHONPATH", "")
    out = os.path.join(work, f"{engine}.json")
    cmd = [sys.executable, os.path.abspath(__file__), *forward_args(args), "--child_engine", engine,
           "--work_dir", work, "--child_output", out]
    proc = subprocess.Popen(cmd, env=child_env, cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=log, text=True)
    return proc, out


def forward_args(args) -> List[str]:
    keys = ("engines", "batch_sizes", "seq_len", "calls_b1", "calls", "rounds", "threads", "seed")
    return [x for k in keys for x in (f"--{k}", str(getattr(args, k)))]


def wait_line(proc, expected: str) -> bool:
    line = proc.stdout.readline()
    while line and line.strip() != expected:
        line = proc.stdout.readline()
    return bool(line)


def markdown(payload: dict) -> str:
    res, setup = payload["results"], payload["setup"]
    out = [f"# Inference profile ({payload['machine']['cpu']}, {payload['threads']} threads, "
           f"{payload['settings']['seq_len']} tokens)", "",
           f"`{payload['command']}`", "",
           f"CPU flags: {', '.join(setup['cpu_features']['flags'])}; load average before / after: "
           f"{payload['load_before']} / {payload['machine']['load_average_1_5_15min']}; {payload['machine']['time']}",
           "", "## Timed forward calls (model call only, median of the interleaved rounds)", "",
           "| engine | batch | ms / forward | CPU ms / forward | of it system | page faults / forward | "
           "x Paddle (paired rounds) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in payload["table"]:
        ratio = f"{row['x_paddle']:.2f}" if row["x_paddle"] else "-"
        out.append(f"| {row['engine']} | {row['batch']} | {row['ms']:.2f} | {row['cpu_ms']:.2f} | "
                   f"{row['system_ms']:.2f} | {row['faults']:,.0f} | {ratio} |")
    for b in payload["settings"]["batch_sizes"].split(","):
        out += ["", f"## Time by operator category, batch {b} (each engine's profiler; µs per forward, share)", "",
                "| category | " + " | ".join(ENGINE_NAMES[e] for e in res) + " |",
                "| --- |" + " ---: |" * len(res)]
        cats = []
        for e in res:
            for c in res[e]["profiles"][b]["by_category"]:
                if c not in cats:
                    cats.append(c)
        for c in cats:
            cells = []
            for e in res:
                v = res[e]["profiles"][b]["by_category"].get(c)
                cells.append(f"{v['us_per_forward']:,.0f} ({v['share']:.0%}, {v['ops_per_forward']:g} ops)"
                             if v else "-")
            out.append(f"| {c} | " + " | ".join(cells) + " |")
        out.append("| **all operators** | " + " | ".join(
            f"**{res[e]['profiles'][b]['op_us_per_forward']:,.0f}** ({res[e]['profiles'][b]['ops_per_forward']:g} ops)"
            for e in res) + " |")
        for e in res:
            out += ["", f"Top operators, {ENGINE_NAMES[e]}, batch {b}:", "",
                    "| operator | per forward | µs per forward | share |", "| --- | ---: | ---: | ---: |"]
            for r in res[e]["profiles"][b]["ops"][:12]:
                out.append(f"| {r['op']} | {r['per_forward']:g} | {r['us_per_forward']:,.1f} | {r['share']:.1%} |")
    paddle = res.get("paddle", {})
    if paddle.get("overhead_batch_1"):
        o, pr = paddle["overhead_batch_1"], paddle["predictor_batch_1"]
        out += ["", "## Paddle Inference per-call overhead, batch 1 (µs, median)", "",
                "| part | µs |", "| --- | ---: |",
                f"| input copies (reshape + copy_from_cpu, 2 inputs) | {o['input_copies']:,.1f} |",
                f"| predictor.run() | {o['run']:,.1f} |",
                f"| output copy (copy_to_cpu) | {o['output_copy']:,.1f} |",
                f"| whole call with copies | {o['call_with_copies']:,.1f} |",
                f"| whole call with share_external_data inputs | {o['call_with_share_external_data']:,.1f} |",
                f"| operators inside run() (profiler, batch 1) | {paddle['profiles']['1']['op_us_per_forward']:,.1f} |",
                "", "`Predictor.predict_proba` on one review (µs, median):", "",
                "| predict_proba | tokenize | pad | forward (runner.run) |", "| ---: | ---: | ---: | ---: |",
                f"| {pr['predict_proba']:,.1f} | {pr['tokenize']:,.1f} | {pr['pad']:,.1f} | {pr['forward']:,.1f} |",
                "", "First call at a new shape [1, length] in a fresh predictor (oneDNN primitives created) against "
                "the next calls (µs):", "", "| length | first call | warm call | first - warm |",
                "| ---: | ---: | ---: | ---: |"]
        for r in paddle["new_shapes"]:
            out.append(f"| {r['length']} | {r['first_call_us']:,.0f} | {r['warm_call_us']:,.0f} | "
                       f"{r['first_call_us'] - r['warm_call_us']:,.0f} |")
        cycle = paddle.get("shape_cycle_us") or {}
        if cycle:
            out += ["", f"Those {len(paddle['new_shapes'])} shapes taken in turn, µs per call (median; oneDNN cache "
                    "capacity from `Config.set_mkldnn_cache_capacity`): " +
                    ", ".join(f"{k}: {v:,.0f}" for k, v in cycle.items())]
    out += ["", "Operators of the exported program (before Paddle Inference's passes): " +
            ", ".join(f"{k} {v}" for k, v in setup.get("ops_in_export", {}).items())]
    if setup.get("unfolded"):
        out += ["", "The model's own forward exported (the rows \"model's own graph\"; export parity "
                f"{setup['unfolded']['parity']:.2g}): " +
                ", ".join(f"{k} {v}" for k, v in setup["unfolded"]["ops_in_export"].items())]
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.child_engine == "prepare":
        common.quiet_paddle()
        common.write_child_output(args.child_output, prepare(args))
        return 0
    if args.child_engine:
        common.quiet_paddle()
        child_engine(args)
        return 0
    import importlib.util

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engines {sorted(unknown)}; choose from {ENGINES}")
    skipped = {}
    for engine in ("onnxruntime", "onnxruntime_unfolded"):
        if engine in engines and importlib.util.find_spec("onnxruntime") is None:
            skipped[engine] = "onnxruntime is not installed (pip install -r benchmarks/requirements.txt)"
    if "torch" in engines and importlib.util.find_spec("torch") is None:
        skipped["torch"] = "torch is not installed (requirements-dev.txt)"
    engines = [e for e in engines if e not in skipped]
    for e, why in skipped.items():
        print(f"skipping {ENGINE_NAMES[e]}: {why}")
    args.engines = ",".join(engines)
    load_before = common.load_average()
    env = common.cpu_env(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="profile_inference_") as work:
        print("preparing: demo corpus, tokenizer, random paper-size model, export ...", flush=True)
        setup = common.run_child(__file__, forward_args(args) + ["--child_engine", "prepare", "--work_dir", work],
                                 env=env)
        if "error" in setup:
            print(setup["log_tail"])
            return 1
        logs = {e: open(os.path.join(work, f"{e}.log"), "w") for e in engines}
        children = {e: start_child(e, args, work, env, logs[e]) for e in engines}
        for e, (proc, _) in list(children.items()):
            if not wait_line(proc, "ready"):
                proc.wait()
                logs[e].close()
                with open(os.path.join(work, f"{e}.log")) as f:
                    print(f"{ENGINE_NAMES[e]} failed to start:\n" + "\n".join(f.read().splitlines()[-15:]))
                skipped[e] = "failed to start"
                del children[e]
        for r in range(args.rounds):
            for b in batch_sizes:
                for e, (proc, _) in children.items():  # one engine at a time: the others wait on their pipe
                    proc.stdin.write(f"{b}\n")
                    proc.stdin.flush()
                    wait_line(proc, "ok")
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        for e, (proc, out) in children.items():  # profiles: one engine at a time
            proc.stdin.write("done\n")
            proc.stdin.close()
            proc.wait()
            logs[e].close()
            if proc.returncode == 0 and os.path.isfile(out):
                with open(out) as f:
                    results[e] = json.load(f)
            else:
                with open(os.path.join(work, f"{e}.log")) as f:
                    print(f"{ENGINE_NAMES[e]} failed:\n" + "\n".join(f.read().splitlines()[-15:]))
    rows = []
    for b in batch_sizes:
        base = results.get("paddle", {}).get("rounds", {}).get(str(b))
        for e, res in results.items():
            rounds = res["rounds"][str(b)]
            ratio = (statistics.median(p["ms_per_forward"] / x["ms_per_forward"] for p, x in zip(base, rounds))
                     if base else None)
            rows.append({"engine": ENGINE_NAMES[e], "batch": b,
                         "ms": statistics.median(x["ms_per_forward"] for x in rounds),
                         "cpu_ms": statistics.median(x["cpu_ms_per_forward"] for x in rounds),
                         "faults": statistics.median(x["page_faults_per_forward"] for x in rounds),
                         "system_ms": statistics.median(x["system_ms_per_forward"] for x in rounds),
                         "x_paddle": ratio})
    header = common.result_header("profile_inference", __file__, args, argv)
    payload = {**header, "description": "per-operator profiles (each engine's profiler) and timed forward calls of "
               "the exported paper-size classifier, 128 tokens, same token ids in every engine",
               "threads": env["OMP_NUM_THREADS"], "load_before": load_before, "env": env,
               "versions": common.versions("paddle", "onnxruntime", "torch", "numpy"),
               "setup": setup, "skipped": skipped, "table": rows, "results": results}
    table = markdown(payload)
    print(f"{time.perf_counter() - start:.0f} s")
    if args.output_dir:
        common.write_results(args.output_dir, args.stem, payload, table)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
