"""Cost growth with sequence length: Fastformer against a standard softmax-attention Transformer of the same size.

Both encoders get the same input ([B, L, H] states, as from the embeddings) and run forward + backward of a
mean loss in train mode (dropout on): Fastformer layers from `fastformer.modeling` against
`paddle.nn.TransformerEncoder` with the same hidden size, heads, layers, feed-forward width, dropout and GELU
(post-LayerNorm, like Fastformer). Per length: the fastest of --steps timed passes and the peak memory of a pass
above what was resident before it: on CPU the peak resident set (VmHWM, reset per length through
/proc/self/clear_refs; where that is refused, each length runs in its own process and the child's ru_maxrss is
read), on GPU `paddle.device.cuda.max_memory_allocated`. Fastformer should grow x2 per doubling of L (linear),
the Transformer towards x4 (quadratic attention).

    python -m benchmarks.bench_scaling --output benchmarks/results/scaling_cpu.json             # ~1-2 min
    python -m benchmarks.bench_scaling --full --output benchmarks/results/scaling_cpu_full.json  # 128..16384
    python -m benchmarks.bench_scaling --lengths 512,1024 --batch_size 4 --steps 3

The Transformer is skipped at lengths whose attention tensors alone (scores, softmax, dropout mask and output:
about 4 x batch x heads x L^2 x 4 bytes per layer) would pass --max_transformer_gib.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import List, Optional, Sequence


from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_LENGTHS = "128,256,512,1024,2048,4096,8192"
FULL_LENGTHS = "128,256,512,1024,2048,4096,8192,16384"
MODELS = ("fastformer", "transformer")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--lengths", default=None, help=f"comma-separated lengths (default {DEFAULT_LENGTHS})")
    p.add_argument("--full", action="store_true",
                   help=f"lengths {FULL_LENGTHS}, 3 timed passes, Transformer memory cap 12 GiB")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--hidden_size", type=int, default=256)
    p.add_argument("--num_layers", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=16)
    p.add_argument("--intermediate_size", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=3, help="timed forward+backward passes per length")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--max_transformer_gib", type=float, default=None,
                   help="skip Transformer lengths whose attention tensors pass this (default 4, --full 12)")
    p.add_argument("--max_step_s", type=float, default=60.0, help="stop a model's longer lengths after a pass this slow")
    p.add_argument("--models", default=",".join(MODELS), help="fastformer,transformer")
    p.add_argument("--device", default="cpu", help="cpu or gpu")
    p.add_argument("--threads", type=int, default=0, help="OMP/MKL threads (0: every core)")
    p.add_argument("--isolate", action="store_true", help="one process per length (peak RSS from ru_maxrss)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the figures to this JSON file")
    p.add_argument("--child_model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_lengths", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_output", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.lengths is None:
        args.lengths = FULL_LENGTHS if args.full else DEFAULT_LENGTHS
    if args.max_transformer_gib is None:
        args.max_transformer_gib = 12.0 if args.full else 4.0
    if args.full and args.steps == 2:
        args.steps = 3
    return args


def attention_gib(args, length: int) -> float:
    """Memory of the Transformer's saved attention tensors, all layers (4 tensors of B x N x L x L floats)."""
    return 4 * args.batch_size * args.num_heads * length * length * 4 * args.num_layers / 2**30


# ---------------------------------------------------------------------------------------------------------- child
def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+)", f.read()).group(1)) / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def build(args, model_name: str):
    import paddle

    paddle.seed(args.seed)
    if model_name == "fastformer":
        from fastformer.configuration import FastformerConfig
        from fastformer.modeling import FastformerModel, additive_mask

        config = FastformerConfig(
            vocab_size=100, hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
            num_attention_heads=args.num_heads, intermediate_size=args.intermediate_size,
            hidden_dropout_prob=args.dropout, max_position_embeddings=512,
        )
        model = FastformerModel(config)
        layers = model.layers

        def forward(x):
            mask = additive_mask(paddle.ones(x.shape[:2], dtype="int64"), x.dtype)  # [B, 1, L], all real tokens
            for layer in layers:
                x = layer(x, mask)
            return x

        params = layers
    else:
        layer = paddle.nn.TransformerEncoderLayer(
            args.hidden_size, args.num_heads, args.intermediate_size, dropout=args.dropout, activation="gelu",
            attn_dropout=args.dropout, act_dropout=0.0, normalize_before=False,
        )
        encoder = paddle.nn.TransformerEncoder(layer, args.num_layers)

        def forward(x):
            return encoder(x)

        params = encoder
    params.train()
    n_params = sum(int(p.numel()) for p in params.parameters())
    return forward, params, n_params


def child_main(args) -> None:
    import numpy as np
    import paddle

    paddle.set_device(args.device)
    forward, params, n_params = build(args, args.child_model)
    gpu = args.device != "cpu"
    sync = paddle.device.synchronize if gpu else (lambda: None)
    rng = np.random.default_rng(args.seed)
    results = []
    can_reset = reset_peak_rss()
    for length in [int(x) for x in args.child_lengths.split(",")]:
        x = paddle.to_tensor(rng.standard_normal((args.batch_size, length, args.hidden_size)).astype("float32"))
        x.stop_gradient = False  # as the embeddings' output: every layer's input gradient is computed

        def step():
            loss = forward(x).mean()
            loss.backward()
            params.clear_gradients()
            x.clear_gradient()

        row = {"length": length}
        try:
            for _ in range(args.warmup):
                step()
            sync()
            if gpu:
                paddle.device.cuda.reset_max_memory_allocated()
                base = paddle.device.cuda.memory_allocated()
            else:
                base = _status_mib("VmRSS")
                reset_peak_rss()
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                sync()
                times.append(time.perf_counter() - start)
            if gpu:
                row["peak_mem_mib"] = (paddle.device.cuda.max_memory_allocated() - base) / 2**20
            elif can_reset:
                row["peak_mem_mib"] = _status_mib("VmHWM") - base
            row.update(time_s=min(times), times_s=[round(t, 4) for t in times], baseline_mib=round(base, 1))
        except MemoryError as exc:
            row["error"] = f"MemoryError: {exc}"
        results.append(row)
        del x
        if row.get("time_s", 0) > args.max_step_s:
            break
    common.write_child_output(args.child_output, {
        "model": args.child_model, "params": n_params, "rss_reset": can_reset, "rows": results,
        "versions": {"paddle": paddle.__version__},
    })


# --------------------------------------------------------------------------------------------------------- parent
def run_model(args, model_name: str, lengths: List[int]) -> dict:
    # glibc keeps freed blocks below its (self-raising, up to 32 MiB) mmap threshold in the heap, resident: a
    # fixed 128 KiB threshold gives every tensor its own mapping, returned on free, so RSS follows live memory
    env = dict(common.cpu_env(args.threads), MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    settings = ["--batch_size", str(args.batch_size), "--hidden_size", str(args.hidden_size),
                "--num_layers", str(args.num_layers), "--num_heads", str(args.num_heads),
                "--intermediate_size", str(args.intermediate_size), "--dropout", str(args.dropout),
                "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device,
                "--max_step_s", str(args.max_step_s), "--seed", str(args.seed), "--child_model", model_name]
    if not lengths:
        return {"model": model_name, "rows": []}
    if not args.isolate:
        res = common.run_child(__file__, settings + ["--child_lengths", ",".join(map(str, lengths))], env=env)
        if "error" in res or res.get("rss_reset") or args.device != "cpu":
            return res
        print("    /proc/self/clear_refs refused: one process per length", flush=True)
    rows, out = [], {}
    for length in lengths:
        res = common.run_child(__file__, settings + ["--child_lengths", str(length)], env=env)
        if "error" in res:
            rows.append({"length": length, "error": res["error"]})
            break
        row = res["rows"][0]
        if "peak_mem_mib" not in row and row.get("baseline_mib") is not None:
            row["peak_mem_mib"] = res["child_peak_rss_mib"] - row["baseline_mib"]  # whole-process peak
        rows.append(row)
        out = res
        if row.get("time_s", 0) > args.max_step_s:
            break
    out["rows"] = rows
    return out


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.child_model:
        common.quiet_paddle()
        child_main(args)
        return {}
    lengths = sorted(int(x) for x in args.lengths.split(","))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    per_model, skipped = {}, {}
    for name in models:
        todo = lengths
        if name == "transformer":
            todo = [n for n in lengths if attention_gib(args, n) <= args.max_transformer_gib]
            skipped[name] = {n: round(attention_gib(args, n), 1) for n in lengths if n not in todo}
        print(f"[{time.strftime('%H:%M:%S')}] {name}: lengths {todo}", flush=True)
        per_model[name] = run_model(args, name, todo)
        if "error" in per_model[name]:
            print(f"    {name}: {per_model[name]['error']}\n{per_model[name].get('log_tail', '')}", flush=True)
    by_len = {name: {r["length"]: r for r in res.get("rows", [])} for name, res in per_model.items()}
    table = []
    for n in lengths:
        row = {"length": n}
        for name in models:
            r = by_len.get(name, {}).get(n, {})
            prev = by_len.get(name, {}).get(n // 2, {})
            if "time_s" in r:
                row[f"{name}_ms"] = r["time_s"] * 1000
                row[f"{name}_mib"] = r.get("peak_mem_mib")
                row[f"{name}_us_per_token"] = r["time_s"] * 1e6 / (n * args.batch_size)
                if "time_s" in prev:
                    row[f"{name}_time_x"] = r["time_s"] / prev["time_s"]
                if r.get("peak_mem_mib") and prev.get("peak_mem_mib"):
                    row[f"{name}_mem_x"] = r["peak_mem_mib"] / prev["peak_mem_mib"]
            elif name in skipped and n in skipped[name]:
                row[f"{name}_note"] = f"skipped (~{skipped[name][n]} GiB attention)"
            elif r.get("error"):
                row[f"{name}_note"] = r["error"][:40]
        if row.get("fastformer_ms") and row.get("transformer_ms"):
            row["time_ratio"] = row["transformer_ms"] / row["fastformer_ms"]
        if row.get("fastformer_mib") and row.get("transformer_mib"):
            row["mem_ratio"] = row["transformer_mib"] / row["fastformer_mib"]
        table.append(row)
    print(f"\nForward + backward, batch {args.batch_size}, hidden {args.hidden_size}, {args.num_layers} layers, "
          f"{args.num_heads} heads, ffn {args.intermediate_size}, {args.device} (load average "
          f"{common.load_average()}: > 0.5 means shared cores, noisy times); memory: peak above resident, MiB")
    print(common.format_table(table, [
        ("length", "L", None),
        ("fastformer_ms", "Fastformer ms", ",.1f"), ("fastformer_time_x", "x/doubling", ".2f"),
        ("fastformer_mib", "MiB", ",.0f"), ("fastformer_mem_x", "x/doubling", ".2f"),
        ("transformer_ms", "Transformer ms", ",.1f"), ("transformer_time_x", "x/doubling", ".2f"),
        ("transformer_mib", "MiB", ",.0f"), ("transformer_mem_x", "x/doubling", ".2f"),
        ("time_ratio", "time T/F", ".2f"), ("mem_ratio", "mem T/F", ".2f"), ("transformer_note", "note", None),
    ]))
    payload = {
        **common.result_header("scaling", __file__, args, argv),
        "params": {name: res.get("params") for name, res in per_model.items()},
        "table": table,
        "models": per_model,
    }
    common.write_json(args.output, payload)
    return payload


if __name__ == "__main__":
    main()
