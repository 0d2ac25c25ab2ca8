"""Training throughput of the Paddle Fastformer against the PyTorch reference, on CPU (or GPU where there is one).

Paper setting: vocab 30,000, hidden 256, 2 layers, 16 heads, intermediate 256, dropout 0.2, Adam, batch 64,
length 256 (`--seq_len 512` for the long setting). One train step = forward + cross-entropy + backward + Adam
update + clearing the gradients. Every case runs in its own child process (its own thread / MKL settings, its
own peak memory), and the figures are tokens/s and reviews/s of the fastest and of the median step.

Cases (`--cases`, comma separated, or `all`). Unless named otherwise a case runs with MKL_DEBUG_CPU_TYPE=5 and
OMP_NUM_THREADS = MKL_NUM_THREADS = torch threads = --threads (default: every core).
  torch               the PyTorch reference (`reproduction.torch_reference.Model`), eager
  torch_1thread       `torch` on one thread
  paddle_untuned      the starting point: `paddle_stock` with Paddle's default threading, no MKL_DEBUG_CPU_TYPE
  paddle_stock        the original op sequence, for the ablation: per-head [B, N, L, D] transposes in the
                      pooling, broadcast multiplies [B, L, H] * [B, 1, H], Paddle's own Linear, LayerNorm, GELU and
                      dropout (forward and backward); only the [B, L] position ids of the embeddings are as they are now
  paddle_pool         stock + pooling as one matmul (no transposes)
  paddle_pool_expand  stock + pooling + expanded (same-shape) multiplies
  paddle_no_cpu_ops   pool_expand + the CPU Linear (addmm forward, GEMM backward, GEMV bias gradient), i.e.
                      `fastformer.modeling` where the compiled kernels cannot be built (FASTFORMER_CPU_OPS=0)
  paddle              `fastformer.modeling` as it is (dygraph): paddle_no_cpu_ops + the compiled LayerNorm and GELU
                      backward and dropout (`fastformer.cpu_ops`)
  paddle_1thread      `paddle` with Paddle's default threading (MKL on one thread)
  paddle_no_mkl_fix   `paddle` without MKL_DEBUG_CPU_TYPE=5
  paddle_to_static    `paddle.jit.to_static(model)`, as the Trainer's `--to_static` does (SOT), train step
  paddle_to_static_ast  `paddle.jit.to_static(model, full_graph=True)` (AST), train step
  paddle_static_step  the whole train step (forward, backward, Adam) under `paddle.jit.to_static` (SOT; AST
                      mode cannot take `loss.backward()` inside the static function)

Padding study (the `paddle` case, `--padding_study`, on by default): review lengths drawn from a log-normal
(median 80 tokens, long tail: `common.review_lengths`), truncated at --seq_len; batches padded to --seq_len,
padded dynamically to their longest review (random batches) or length-bucketed and padded dynamically; the
timed batches are drawn at random from each strategy's batches and the figure is reviews/s.

    python -m benchmarks.bench_train --output benchmarks/results/train_cpu.json                 # ~2 min
    python -m benchmarks.bench_train --cases all --steps 5 --output benchmarks/results/train_cpu_ablation.json
    python -m benchmarks.bench_train --seq_len 512 --output benchmarks/results/train_cpu_512.json
    python -m benchmarks.bench_train --cases paddle,torch --profile     # top ops of both, per step
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import List, Optional, Sequence


from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))

BASE_ENV = {"MKL_DEBUG_CPU_TYPE": "5", "BENCH_THREADS": "all"}
CASES = {
    # name: (framework, variant, environment over BASE_ENV; None removes the variable)
    "torch": ("torch", "eager", {}),
    "torch_1thread": ("torch", "eager", {"BENCH_THREADS": "1"}),
    "paddle_untuned": ("paddle", "stock", {"MKL_DEBUG_CPU_TYPE": None, "BENCH_NO_MKL_FIX": "1",
                                           "BENCH_THREADS": "paddle_default", "FASTFORMER_CPU_OPS": "0"}),
    "paddle_stock": ("paddle", "stock", {"FASTFORMER_CPU_OPS": "0"}),
    "paddle_pool": ("paddle", "pool", {"FASTFORMER_CPU_OPS": "0"}),
    "paddle_pool_expand": ("paddle", "pool_expand", {"FASTFORMER_CPU_OPS": "0"}),
    "paddle_no_cpu_ops": ("paddle", "fast", {"FASTFORMER_CPU_OPS": "0"}),
    "paddle": ("paddle", "fast", {}),
    "paddle_1thread": ("paddle", "fast", {"BENCH_THREADS": "paddle_default"}),
    "paddle_no_mkl_fix": ("paddle", "fast", {"MKL_DEBUG_CPU_TYPE": None, "BENCH_NO_MKL_FIX": "1"}),
    "paddle_to_static": ("paddle", "to_static", {}),
    "paddle_to_static_ast": ("paddle", "to_static_ast", {}),
    "paddle_static_step": ("paddle", "static_step", {}),
}
DEFAULT_CASES = "torch,paddle"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated cases or 'all' (default {DEFAULT_CASES})")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seq_len", type=int, default=256, help="padded length of the fixed-length steps (512: long)")
    p.add_argument("--vocab_size", type=int, default=30000)
    p.add_argument("--hidden_size", type=int, default=256)
    p.add_argument("--num_layers", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=16)
    p.add_argument("--intermediate_size", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=3, help="timed steps per case")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every case this many times, interleaved, and keep each case's fastest round (a shared "
                   "machine drifts over minutes: rounds spread the drift over all cases)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (to_static cases add one)")
    p.add_argument("--threads", type=int, default=0, help="threads of the 'all' cases (0: every core)")
    p.add_argument("--device", default="cpu", help="cpu or gpu (paddle 'gpu', torch 'cuda')")
    p.add_argument("--padding_study", dest="padding_study", action="store_true", default=True,
                   help="time pad-to-max / dynamic / bucketed batches of realistic lengths (default on)")
    p.add_argument("--no_padding_study", dest="padding_study", action="store_false")
    p.add_argument("--padding_batches", type=int, default=3, help="timed batches per padding strategy")
    p.add_argument("--num_reviews", type=int, default=20000, help="reviews drawn for the padding study")
    p.add_argument("--length_median", type=float, default=80.0, help="median review length in tokens")
    p.add_argument("--length_sigma", type=float, default=0.9, help="log-normal shape of the review lengths")
    p.add_argument("--profile", action="store_true", help="profile 2 steps per case and report the top ops")
    p.add_argument("--profile_top", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the figures to this JSON file")
    p.add_argument("--child_case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_output", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------------------- paddle
def _stock_attention(modeling):
    """The original op sequence of `FastSelfAttention` (for the ablation only): the per-head pooling through a
    [B, N, L, D] transpose, and broadcast multiplies. Same math as `fastformer.modeling`."""
    import paddle
    import paddle.nn.functional as F

    def pool(self, logits, mask, x):
        b, n, d = paddle.shape(x)[0], self.num_heads, self.head_size
        weights = F.softmax(logits.transpose([0, 2, 1]) * self.scale + mask, axis=-1)  # [B, N, L]
        heads = x.reshape([b, -1, n, d]).transpose([0, 2, 1, 3])  # [B, N, L, D]
        return paddle.matmul(weights.unsqueeze(2), heads).reshape([b, 1, n * d])

    def forward_broadcast(self, hidden_states, mask):
        q, k = self.query(hidden_states), self.key(hidden_states)
        global_query = self._pool(self.query_att(q), mask, q)
        p = k * global_query  # broadcast [B, L, H] * [B, 1, H]
        global_key = self._pool(self.key_att(p), mask, p)
        v = q if self.value is None else self.value(hidden_states)
        return self.transform(global_key * v) + q

    return pool, forward_broadcast


def apply_variant(variant: str) -> None:
    """Patch `fastformer.modeling` for the ablation variants (in this child process only)."""
    from fastformer import cpu_layers, modeling

    if variant not in ("stock", "pool", "pool_expand"):
        return
    pool, forward_broadcast = _stock_attention(modeling)
    cpu_layers.custom_grad = lambda *args, **kwargs: False  # Paddle's own Linear / LayerNorm backward
    if variant == "stock":
        modeling.FastSelfAttention._pool = pool
    if variant in ("stock", "pool"):
        modeling.FastSelfAttention.forward = forward_broadcast


def gemm_gflops(paddle) -> float:
    """GFLOP/s of Paddle's CPU matmul on the model's largest shape ([8192, 256] x [256, 256])."""
    a, b = paddle.rand([8192, 256]), paddle.rand([256, 256])
    paddle.matmul(a, b)
    start = time.perf_counter()
    for _ in range(10):
        paddle.matmul(a, b)
    return 2 * 8192 * 256 * 256 * 10 / (time.perf_counter() - start) / 1e9


def paddle_case(args, variant: str) -> dict:
    import numpy as np
    import paddle

    if os.environ.get("BENCH_NO_MKL_FIX") == "1":
        # MKL picks its code path at its first call, and `import fastformer` sets MKL_DEBUG_CPU_TYPE=5: to measure
        # without it, MKL must run once before fastformer is imported
        gemm_gflops(paddle)
    apply_variant(variant)
    from fastformer.configuration import FastformerConfig
    from fastformer.modeling import FastformerForSequenceClassification

    paddle.set_device(args.device)
    paddle.seed(args.seed)
    config = FastformerConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads, intermediate_size=args.intermediate_size,
        hidden_dropout_prob=args.dropout, max_position_embeddings=max(512, args.seq_len), num_labels=5,
    )
    model = FastformerForSequenceClassification(config)
    model.train()
    opt = paddle.optimizer.Adam(learning_rate=args.lr, parameters=model.parameters())
    rng = np.random.default_rng(args.seed)

    def batch(lengths: List[int], padded_len: int):
        ids = np.zeros((len(lengths), padded_len), dtype="int64")
        for row, n in enumerate(lengths):
            ids[row, :n] = rng.integers(1, args.vocab_size, n)
        return (paddle.to_tensor(ids), paddle.to_tensor((ids != 0).astype("int64")),
                paddle.to_tensor(rng.integers(0, 5, len(lengths)).astype("int64")))

    forward = model
    result = {}
    if variant == "to_static":
        forward = paddle.jit.to_static(model)  # what Trainer(to_static=True) does (SOT)
    elif variant == "to_static_ast":  # the whole model as one static program
        forward = paddle.jit.to_static(model, full_graph=True)
    warmup = args.warmup + (1 if variant in ("to_static", "to_static_ast", "static_step") else 0)  # + tracing

    def make_step(ids, mask, labels):
        if variant == "static_step":
            # SOT: `loss.backward()` / `opt.step()` break the graph (AST mode, full_graph=True, fails on them:
            # "'pir.Value' object has no attribute 'backward'"), so only the forward runs as a static program
            @paddle.jit.to_static
            def train_step(ids, mask, labels):
                loss = model(ids, attention_mask=mask, labels=labels, return_dict=False)[0]
                loss.backward()
                opt.step()
                opt.clear_grad()
                return loss

            return lambda: train_step(ids, mask, labels)

        def step():
            loss = forward(input_ids=ids, attention_mask=mask, labels=labels).loss  # Trainer.compute_loss
            loss.backward()
            opt.step()
            opt.clear_grad()
            return loss

        return step

    sync = (lambda: paddle.device.synchronize()) if args.device != "cpu" else (lambda: None)
    ids, mask, labels = batch([args.seq_len] * args.batch_size, args.seq_len)
    step = make_step(ids, mask, labels)
    if args.device != "cpu":
        paddle.device.cuda.reset_max_memory_allocated()
    try:
        result.update(common.time_calls(step, args.steps, warmup, sync))
    except Exception as exc:  # noqa: BLE001 - report what does not work (to_static of a train step, say)
        return {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"}
    if args.device != "cpu":
        result["gpu_peak_mem_mib"] = round(paddle.device.cuda.max_memory_allocated() / 2**20, 1)
    if args.profile:
        result["profile"] = profile_paddle(step, args.profile_top)
    if args.padding_study and variant == "fast":
        result["padding_study"] = padding_study(args, lambda lengths, n: make_step(*batch(lengths, n)), sync)
    result["paddle_threads_env"] = os.environ.get("OMP_NUM_THREADS")
    return result


def profile_paddle(step, top: int) -> List[dict]:
    """Per-op CPU time of 2 steps (paddle.profiler's operator summary), the `top` largest, in ms per step.

    Times are inclusive: a PyLayer's backward node contains the matmuls it calls, which also count under
    `matmul dygraph`, so the rows overlap; `share` is of the wall time of the profiled steps.
    """
    import contextlib
    import io
    import re

    import paddle.profiler as profiler

    p = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda prof: None)
    start = time.perf_counter()
    p.start()
    for _ in range(2):
        step()
        p.step()
    p.stop()
    wall_ms = (time.perf_counter() - start) * 1000 / 2
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        p.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, thread_sep=False, time_unit="ms")
    text = buf.getvalue()
    text = text[text.find("Operator Summary"):]
    rows = []
    for m in re.finditer(r"^(\S.*?)\s{2,}(\d+)\s+([\d.]+) / ", text, re.M):
        ms = float(m.group(3)) / 2
        rows.append({"op": m.group(1).strip(), "calls_per_step": int(m.group(2)) / 2, "ms_per_step": round(ms, 1),
                     "share": round(ms / wall_ms, 3)})
    return sorted(rows, key=lambda r: -r["ms_per_step"])[:top]


def padding_study(args, make_step, sync) -> List[dict]:
    lengths = common.review_lengths(args.num_reviews, args.seq_len, args.length_median, args.length_sigma, args.seed)
    out = []
    for strategy in ("pad_max", "dynamic", "bucketed"):
        batches = common.make_batches(lengths, args.batch_size, strategy, seed=args.seed, max_len=args.seq_len)
        real = sum(sum(b["lengths"]) for b in batches)
        padded = sum(b["padded_len"] * len(b["lengths"]) for b in batches)
        import numpy as np

        pick = np.random.default_rng(args.seed + 1).choice(len(batches), size=args.padding_batches, replace=False)
        seconds, n_reviews, n_real = 0.0, 0, 0
        for i in pick:
            b = batches[int(i)]
            step = make_step(b["lengths"], b["padded_len"])
            step()  # warm (first call of a new shape)
            sync()
            t = time.perf_counter()
            step()
            sync()
            seconds += time.perf_counter() - t
            n_reviews += len(b["lengths"])
            n_real += sum(b["lengths"])
        out.append({
            "strategy": strategy,
            "mean_padded_len": round(padded / (len(batches) * args.batch_size), 1),
            "mean_review_len": round(real / (len(batches) * args.batch_size), 1),
            "padding_share": round(1 - real / padded, 3),
            "timed_batches": int(args.padding_batches),
            "reviews_per_s": round(n_reviews / seconds, 1),
            "real_tokens_per_s": round(n_real / seconds),
        })
    return out


# ---------------------------------------------------------------------------------------------------------- torch
def torch_case(args) -> dict:
    import torch

    from reproduction.torch_reference import Model, TorchFastformerConfig

    if os.environ.get("BENCH_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
    device = "cuda" if args.device == "gpu" else "cpu"
    torch.manual_seed(args.seed)
    config = TorchFastformerConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads, intermediate_size=args.intermediate_size,
        hidden_dropout_prob=args.dropout, max_position_embeddings=max(512, args.seq_len), num_labels=5,
    )
    model = Model(config).to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1, args.vocab_size, (args.batch_size, args.seq_len), generator=gen).to(device)
    labels = torch.randint(0, 5, (args.batch_size,), generator=gen).to(device)

    def step():
        loss, _ = model(ids, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = common.time_calls(step, args.steps, args.warmup, sync)
    if device == "cuda":
        result["gpu_peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result["torch_threads"] = torch.get_num_threads()
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(2):
                step()
        wall_ms = (time.perf_counter() - start) * 1000 / 2
        # self time (torch nests aten ops deeply; self time does not double count), share of the step's wall time
        rows = [{"op": e.key, "calls_per_step": e.count / 2, "ms_per_step": round(e.self_cpu_time_total / 2000, 1),
                 "share": round(e.self_cpu_time_total / 2000 / wall_ms, 3)} for e in prof.key_averages()]
        result["profile"] = sorted(rows, key=lambda r: -r["ms_per_step"])[: args.profile_top]
    return result


# ----------------------------------------------------------------------------------------------------------- main
def child_main(args) -> None:
    framework, variant, _ = CASES[args.child_case]
    if framework == "paddle":
        common.quiet_paddle()
        result = paddle_case(args, variant)
        import paddle

        result["gemm_gflops"] = gemm_gflops(paddle)  # which MKL code path the case ran on
        result["versions"] = {"paddle": paddle.__version__}
    else:
        result = torch_case(args)
        import torch

        result["versions"] = {"torch": torch.__version__}
    result["peak_rss_mib"] = round(common.peak_rss_mib(), 1)
    common.write_child_output(args.child_output, result)


def case_env(name: str, threads: int) -> dict:
    """The child's environment changes: MKL path, thread counts (BENCH_THREADS: all, 1 or paddle_default,
    i.e. no OMP_NUM_THREADS: Paddle's MKL on one thread)."""
    env = dict(BASE_ENV)
    env.update(CASES[name][2])
    n = str(threads or os.cpu_count() or 1)
    mode = env.pop("BENCH_THREADS")
    if mode == "all":
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, BENCH_TORCH_THREADS=n)
    elif mode == "1":
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", BENCH_TORCH_THREADS="1")
    else:
        env.update(OMP_NUM_THREADS=None, MKL_NUM_THREADS=None, BENCH_TORCH_THREADS=None)
    return env


def forward_args(args) -> List[str]:
    skip = {"cases", "output", "rounds", "child_case", "child_output"}
    out = []
    for key, value in vars(args).items():
        if key in skip:
            continue
        if isinstance(value, bool):
            if key == "padding_study":
                out.append("--padding_study" if value else "--no_padding_study")
            elif value:
                out.append(f"--{key}")
        elif value is not None:
            out += [f"--{key}", str(value)]
    return out


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.child_case:
        child_main(args)
        return {}
    names = list(CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    tokens = args.batch_size * args.seq_len
    results = {}
    for round_ in range(args.rounds):
        # later rounds time the steps only; each case keeps its fastest round (the least disturbed one)
        round_args = args if round_ == 0 else argparse.Namespace(**dict(vars(args), padding_study=False, profile=False))
        for name in names:
            print(f"[{time.strftime('%H:%M:%S')}] {name} (round {round_ + 1}/{args.rounds}) ...", flush=True)
            env = case_env(name, args.threads)
            res = common.run_child(__file__, forward_args(round_args) + ["--child_case", name], env=env)
            res["env"] = env
            if "error" in res:
                print(f"    {name}: {res['error']}\n{res.get('log_tail', '')}", flush=True)
            best = results.get(name)
            rounds_min_s = (best or {}).get("rounds_min_s", []) + [res.get("min_s")]
            if best is None or ("error" not in res and res["min_s"] < best.get("min_s", math.inf)):
                for key in ("padding_study", "profile"):
                    if best and key in best:
                        res[key] = best[key]
                best = results[name] = res
            best["rounds_min_s"] = rounds_min_s
    rows = []
    for name in names:
        res = results[name]
        row = {"case": name}
        if "error" in res:
            row["note"] = res["error"][:80]
        else:
            row.update(
                step_min_s=res["min_s"], step_median_s=res["median_s"], tokens_per_s=tokens / res["min_s"],
                tokens_per_s_median=tokens / res["median_s"], reviews_per_s=args.batch_size / res["min_s"],
                cores_used=res.get("cores_used"), cpu_s=res.get("cpu_s_per_step"), peak_rss_mib=res.get("child_peak_rss_mib"),
                gemm_gflops=res.get("gemm_gflops"),
            )
            res.update({k: row[k] for k in ("tokens_per_s", "tokens_per_s_median", "reviews_per_s")})
        rows.append(row)
    ref = results.get("torch", {}).get("min_s")
    ref_cpu = results.get("torch", {}).get("cpu_s_per_step")
    for row in rows:
        if ref and row.get("step_min_s"):
            row["vs_torch"] = ref / row["step_min_s"]
        if ref_cpu and row.get("cpu_s"):
            row["cpu_vs_torch"] = ref_cpu / row["cpu_s"]
    print(f"\nTrain step, batch {args.batch_size} x length {args.seq_len}, {args.device} "
          f"(load average {common.load_average()}: > 0.5 means shared cores, noisy figures)")
    print(common.format_table(rows, [
        ("case", "case", None), ("step_min_s", "step s (min)", ".3f"), ("step_median_s", "median", ".3f"),
        ("tokens_per_s", "tokens/s", ",.0f"), ("reviews_per_s", "reviews/s", ".1f"), ("vs_torch", "x torch", ".2f"),
        ("cpu_s", "CPU s/step", ".2f"), ("cpu_vs_torch", "x torch CPU", ".2f"), ("cores_used", "cores", ".2f"), ("peak_rss_mib", "peak RSS MiB", ".0f"),
        ("gemm_gflops", "GEMM GFLOP/s", ".0f"), ("note", "note", None),
    ]))
    study = results.get("paddle", {}).get("padding_study")
    if study:
        print(f"\nPadding study (paddle, {args.num_reviews} reviews, log-normal median {args.length_median:g} tokens, "
              f"sigma {args.length_sigma:g}, truncated at {args.seq_len}; {args.padding_batches} timed batches each)")
        print(common.format_table(study, [
            ("strategy", "batches", None), ("mean_review_len", "mean review", ".1f"),
            ("mean_padded_len", "mean padded len", ".1f"), ("padding_share", "padding", ".1%"),
            ("reviews_per_s", "reviews/s", ".1f"), ("real_tokens_per_s", "real tokens/s", ",.0f"),
        ]))
    for name in names:
        prof = results[name].get("profile")
        if prof:
            print(f"\nTop ops of {name} (ms per step, CPU total incl. children)")
            print(common.format_table(prof, [("op", "op", None), ("calls_per_step", "calls", ".0f"),
                                             ("ms_per_step", "ms/step", ".1f"), ("share", "share", ".1%")]))
    payload = {
        **common.result_header("train_step", __file__, args, argv),
        "table": rows,
        "cases": results,
    }
    common.write_json(args.output, payload)
    return payload


if __name__ == "__main__":
    main()
