"""Loopback load test of serve.py: concurrent clients -> p50/p99 request latency and texts/s, with request batching
("batched", the default server) and without ("per_request": --max_batch_texts 1, one request per forward pass),
next to the predictor's own throughput at batch 64 on the same texts.

The model: by default the random paper-size export and 120-128-token review texts of bench_inference.py (its
prepare step, same flags); or --model_dir EXPORT with --texts_file (JSON lines with "text", e.g. a dev split).
Each server is its own process (`serve.py`, OMP/MKL threads = --threads, MKL_DEBUG_CPU_TYPE=5) on 127.0.0.1 and a
free port, started once and kept over --rounds rounds; a round times the predictor alone (a fresh child process,
best of 3 calls) and then loads each server in turn. The clients are threads of this process, one keep-alive
connection each: --warmup_requests untimed requests, then --requests requests one after another, each of a random
number of texts (--texts_per_request, e.g. 1-16) drawn from the pool (other draws each round), every answer read
and parsed. Everything is bounded: the number of requests, a per-request timeout (--timeout), a deadline for the
servers to come up; servers are stopped at the end. The clients share the CPU with the server, as a client on the
same host would: the CPU time of this process (the clients) and of the server during the timed requests is
recorded ("client_cpu_share"). Reported: the best round of the predictor and of each server, and the median over
rounds of the ratio within a round; on a machine other processes share, the figures are noisy
(`load_average_1_5_15min`).

    python -m benchmarks.bench_serve --output benchmarks/results/serve_cpu.json                 # 8 clients x 40
    python -m benchmarks.bench_serve --clients 8 --requests 50 --texts_per_request 1-16 --precision bf16
    python -m benchmarks.bench_serve --model_dir output/demo/export --texts_file output/demo/data/dev.jsonl
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional, Sequence


from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))

MODES = ("batched", "per_request")
ROUND_KEYS = ("texts_per_s", "latency_ms_p50", "latency_ms_p99", "requests_failed", "client_cpu_share",
              "x_predictor_batch_this_round")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--modes", default=",".join(MODES), help=f"comma separated, from {','.join(MODES)}")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--requests", type=int, default=40, help="timed requests per client")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds of (predictor alone, then each server under load); the best of each is reported")
    p.add_argument("--warmup_requests", type=int, default=2, help="untimed requests per client before the timed ones")
    p.add_argument("--texts_per_request", default="1-16", help="N or LO-HI: texts per request, uniform")
    p.add_argument("--batch_size", type=int, default=64, help="the server's and the reference predictor's batch size")
    p.add_argument("--max_batch_texts", type=int, default=None, help="batched mode: serve.py --max_batch_texts")
    p.add_argument("--batch_wait_ms", type=float, default=2.0, help="batched mode: serve.py --batch_wait_ms")
    p.add_argument("--precision", default="auto", help="serve.py --precision (auto, fp32, bf16)")
    p.add_argument("--threads", type=int, default=0, help="server CPU threads (0: every core)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it counts as failed")
    p.add_argument("--start_timeout", type=float, default=600.0, help="seconds for a server to answer /health")
    p.add_argument("--model_dir", default=None, help="an export folder (default: bench_inference's random model)")
    p.add_argument("--texts_file", default=None, help="with --model_dir: JSON lines with 'text' (the request pool)")
    p.add_argument("--pool_texts", type=int, default=512, help="texts in the pool (default model)")
    p.add_argument("--seq_len", type=int, default=128, help="default model: max_length and text length")
    p.add_argument("--hidden_size", type=int, default=256)
    p.add_argument("--num_layers", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=16)
    p.add_argument("--intermediate_size", type=int, default=256)
    p.add_argument("--corpus_reviews", type=int, default=3000)
    p.add_argument("--reference_texts", type=int, default=256, help="texts of the predictor's batch-64 timing")
    p.add_argument("--request_batches", default="1,4,8",
                   help="comma separated k: also time the predictor on calls of k requests each ('' for none)")
    p.add_argument("--request_batch_requests", type=int, default=160, help="requests drawn for each k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--child_case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work_dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_output", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    lo, _, hi = args.texts_per_request.partition("-")
    try:
        args.texts_range = (int(lo), int(hi or lo))
    except ValueError:
        p.error(f"--texts_per_request must be N or LO-HI, got {args.texts_per_request!r}")
    try:
        args.request_batch_sizes = [int(k) for k in args.request_batches.split(",") if k.strip()]
    except ValueError:
        p.error(f"--request_batches must be comma separated numbers, got {args.request_batches!r}")
    if any(k < 1 for k in args.request_batch_sizes) or args.request_batch_requests < 1:
        p.error("--request_batches and --request_batch_requests must be at least 1")
    if not 1 <= args.texts_range[0] <= args.texts_range[1]:
        p.error(f"--texts_per_request needs 1 <= LO <= HI, got {args.texts_per_request!r}")
    if args.clients < 1 or args.requests < 1 or args.rounds < 1 or args.warmup_requests < 0:
        p.error("--clients, --requests and --rounds must be at least 1, --warmup_requests at least 0")
    if not args.child_case and bool(args.model_dir) != bool(args.texts_file):
        p.error("--model_dir and --texts_file go together")
    return args


# ---------------------------------------------------------------------------------------------------- child
def reference_case(args) -> dict:
    """The predictor's own reviews/s at --batch_size on the pool texts (the target's denominator), and, for each k of
    --request_batches, its texts/s when each `predict` call gets k requests drawn as the clients draw them: the most
    a server that forms such batches could do, HTTP aside."""
    import warnings

    from fastformer.inference import precision
    from fastformer.inference.loader import load_predictor

    with open(os.path.join(args.work_dir, "pool.json"), encoding="utf-8") as f:
        pool = json.load(f)
    texts = pool[:args.reference_texts]
    threads = args.threads or os.cpu_count() or 1
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        predictor = load_predictor(args.model_dir, batch_size=args.batch_size, num_threads=threads, precision=args.precision)
    timing = common.time_calls(lambda: predictor.predict_proba(texts), steps=3, warmup=1)
    rng = random.Random(args.seed * 1000 + 999)
    request_batches = {}
    for k in args.request_batch_sizes:
        calls = []
        for _ in range(2):  # the first draws warm up (kernels for new shapes), the second are timed
            requests = [rng.sample(pool, rng.randint(*args.texts_range)) for _ in range(args.request_batch_requests)]
            calls = [[t for r in requests[i:i + k] for t in r] for i in range(0, len(requests), k)]
            start = time.perf_counter()
            for call in calls:
                predictor.predict(call)
            seconds = time.perf_counter() - start
        request_batches[str(k)] = {"calls": len(calls), "texts": sum(map(len, calls)),
                                   "texts_per_s": sum(map(len, calls)) / seconds}
    return {"backend": predictor.backend, "precision": predictor.precision, "precision_note": predictor.precision_note,
            "num_texts": len(texts),
            "batch_size": args.batch_size, "texts_per_s_best": len(texts) / timing["min_s"],
            "texts_per_s_median": len(texts) / timing["median_s"], "times_s": timing["times_s"],
            "request_batches": request_batches, "cpu_features": precision.cpu_features()}


# ---------------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Optional[dict] = None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    conn.request(method, path, body=data, headers={"content-type": "application/json"} if data else {})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


class Server:
    """serve.py in a child process on 127.0.0.1; stopped on exit."""

    def __init__(self, args, model_dir: str, extra: List[str], log_file: str):
        self.port = free_port()
        env = dict(os.environ, **common.cpu_env(args.threads))
        env["PYTHONPATH"] = common.ROOT + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, os.path.join(common.ROOT, "serve.py"), "--model_dir", model_dir, "--host", "127.0.0.1",
               "--port", str(self.port), "--log_level", "warning", "--batch_size", str(args.batch_size),
               "--precision", args.precision, *extra]
        self.log = open(log_file, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.command = " ".join(cmd[1:])

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited with {self.proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                status, body = request(conn, "GET", "/health")
                conn.close()
                if status == 200:
                    return body
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"serve.py did not answer /health within {timeout:.0f} s")

    def health(self) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            return request(conn, "GET", "/health")[1]
        finally:
            conn.close()

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        with open(self.log.name) as f:
            return "\n".join(f.read().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def process_cpu_s(pid: int) -> Optional[float]:
    """User + system CPU seconds of process `pid` so far (all its threads), from /proc; None where there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(args, port: int, pool: List[str], server_pid: Optional[int] = None, round_index: int = 0) -> dict:
    """--clients threads x (warm-up + --requests) requests; latencies, texts/s, failures, and the CPU time the
    clients (this process) and the server took during the timed requests."""
    lo, hi = args.texts_range
    latencies: List[float] = []
    texts_done = [0]
    failures: List[str] = []
    lock = threading.Lock()
    start_barrier = threading.Barrier(args.clients + 1)
    done_at: List[float] = []

    def client(c: int) -> None:
        rng = random.Random((args.seed * 1000 + round_index) * 1000 + c)  # other texts each round
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)

        def one(record: bool) -> None:
            texts = rng.sample(pool, rng.randint(lo, hi))
            t0 = time.perf_counter()
            try:
                status, body = request(conn, "POST", "/predict", {"texts": texts})
                ok = status == 200 and len(body["predictions"]) == len(texts)
                problem = None if ok else f"status {status}: {str(body)[:200]}"
            except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
            elapsed = time.perf_counter() - t0
            if record:
                with lock:
                    if problem:
                        failures.append(problem)
                    else:
                        latencies.append(elapsed)
                        texts_done[0] += len(texts)

        try:
            for _ in range(args.warmup_requests):
                one(False)
        finally:
            start_barrier.wait()
        conn.close()  # a fresh connection: the server closes one idle for 5 s (uvicorn's keep-alive), as at the barrier
        for _ in range(args.requests):
            one(True)
        conn.close()
        with lock:
            done_at.append(time.perf_counter())

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(args.clients)]
    for t in threads:
        t.start()
    start_barrier.wait()
    start = time.perf_counter()
    client_cpu, server_cpu = resource.getrusage(resource.RUSAGE_SELF), process_cpu_s(server_pid or 0)
    for t in threads:
        t.join(args.timeout * (args.requests + args.warmup_requests) + 60)
    wall = (max(done_at) if done_at else time.perf_counter()) - start
    client_end, server_end = resource.getrusage(resource.RUSAGE_SELF), process_cpu_s(server_pid or 0)
    client_s = (client_end.ru_utime - client_cpu.ru_utime) + (client_end.ru_stime - client_cpu.ru_stime)
    server_s = server_end - server_cpu if server_cpu is not None and server_end is not None else None
    ms = sorted(1000 * x for x in latencies)

    def pct(q: float) -> Optional[float]:
        return ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))] if ms else None

    return {
        "requests_ok": len(latencies), "requests_failed": len(failures), "failures_first": failures[:5],
        "texts": texts_done[0], "wall_s": round(wall, 3),
        "texts_per_s": texts_done[0] / wall if wall > 0 else None,
        "requests_per_s": len(latencies) / wall if wall > 0 else None,
        "latency_ms_p50": pct(0.50), "latency_ms_p99": pct(0.99), "latency_ms_max": ms[-1] if ms else None,
        "latency_ms_mean": statistics.fmean(ms) if ms else None,
        # CPU seconds over the timed requests (client: this whole process, whose only work then is the clients)
        "client_cpu_s": round(client_s, 3), "server_cpu_s": None if server_s is None else round(server_s, 3),
        "client_cpu_share": (round(client_s / (client_s + server_s), 4) if server_s is not None and client_s + server_s > 0
                             else None),
        "client_cpu_ms_per_request": round(1000 * client_s / len(latencies), 3) if latencies else None,
        "server_cpu_ms_per_request": (round(1000 * server_s / len(latencies), 3) if latencies and server_s is not None
                                      else None),
    }


# ---------------------------------------------------------------------------------------------------- parent
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.child_case == "reference":
        common.quiet_paddle()
        common.write_child_output(args.child_output, reference_case(args))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        raise SystemExit(f"unknown modes {sorted(set(modes) - set(MODES))}; choose from {MODES}")
    env = common.cpu_env(args.threads)
    start = time.perf_counter()
    results, setup = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as work:
        if args.model_dir:
            model_dir = os.path.abspath(args.model_dir)  # the children run in a temporary folder
            with open(args.texts_file, encoding="utf-8") as f:
                pool = [json.loads(line)["text"] for line in f if line.strip()]
        else:
            print("preparing: demo corpus, tokenizer, random paper-size model, export (bench_inference.py) ...",
                  flush=True)
            keys = ("seq_len", "hidden_size", "num_layers", "num_heads", "intermediate_size", "corpus_reviews",
                    "threads", "seed")
            prepare_args = [x for k in keys for x in (f"--{k}", str(getattr(args, k)))]
            setup = common.run_child(os.path.join(HERE, "bench_inference.py"), prepare_args + [
                "--cases", "inference_onednn", "--num_texts", str(args.pool_texts), "--child_case", "prepare",
                "--work_dir", work], env=env)
            if "error" in setup:
                print(setup["log_tail"])
                return 1
            model_dir = os.path.join(work, "export")
            with open(os.path.join(work, "texts.json"), encoding="utf-8") as f:
                pool = json.load(f)
        if not pool:
            raise SystemExit("no texts in the request pool")
        with open(os.path.join(work, "pool.json"), "w", encoding="utf-8") as f:
            json.dump(pool, f)
        servers, references, rounds = {}, [], {mode: [] for mode in modes}
        try:
            for mode in modes:  # started once, kept over the rounds (warm, as a server that has been running)
                extra = ["--batch_wait_ms", str(args.batch_wait_ms)]
                if mode == "per_request":
                    extra += ["--max_batch_texts", "1"]
                elif args.max_batch_texts:
                    extra += ["--max_batch_texts", str(args.max_batch_texts)]
                servers[mode] = Server(args, model_dir, extra, os.path.join(work, f"serve_{mode}.log"))
            health = {}
            for mode, server in servers.items():
                try:
                    health[mode] = server.wait_ready(args.start_timeout)
                except RuntimeError as exc:
                    results[mode] = {"error": str(exc), "log_tail": server.log_tail()}
                    print(f"  serve.py ({mode}) failed: {exc}\n{results[mode]['log_tail']}")
            for r in range(args.rounds):
                print(f"round {r + 1} of {args.rounds}: predictor alone, batch {args.batch_size} ...", flush=True)
                reference = common.run_child(__file__, [
                    "--child_case", "reference", "--work_dir", work, "--model_dir", model_dir,
                    "--batch_size", str(args.batch_size), "--threads", str(args.threads), "--precision",
                    args.precision, "--reference_texts", str(args.reference_texts), "--texts_per_request",
                    args.texts_per_request, "--request_batches", args.request_batches, "--request_batch_requests",
                    str(args.request_batch_requests), "--seed", str(args.seed + r)], env=env)
                if "error" in reference:
                    print(reference["log_tail"])
                    return 1
                references.append(reference)
                print(f"  {reference['texts_per_s_best']:.1f} texts/s ({reference['precision']})"
                      + "".join(f"; {k} request(s) per call {v['texts_per_s']:.1f}"
                                for k, v in reference["request_batches"].items()), flush=True)
                for mode in modes:
                    if mode in results:  # did not start
                        continue
                    print(f"  serving ({mode}): {args.clients} clients x {args.requests} requests of "
                          f"{args.texts_per_request} texts ...", flush=True)
                    try:
                        result = load(args, servers[mode].port, pool, servers[mode].proc.pid, round_index=r)
                    except RuntimeError as exc:
                        results[mode] = {"error": str(exc), "log_tail": servers[mode].log_tail()}
                        continue
                    result["x_predictor_batch_this_round"] = (result["texts_per_s"] / reference["texts_per_s_best"]
                                                              if result["texts_per_s"] else None)
                    rounds[mode].append(result)
                    print(f"    {result['texts_per_s']:.1f} texts/s ({result['x_predictor_batch_this_round']:.2f}x "
                          f"this round's predictor), p50 {result['latency_ms_p50']:.1f} ms, p99 "
                          f"{result['latency_ms_p99']:.1f} ms, {result['requests_failed']} failed; CPU: server "
                          f"{result['server_cpu_s']} s, clients {result['client_cpu_s']} s", flush=True)
            for mode, server in servers.items():
                if mode in results:
                    continue
                stats = server.health().get("batching", {})
                best = max(rounds[mode], key=lambda x: x["texts_per_s"] or 0)
                results[mode] = {
                    **best, "best_of_rounds": len(rounds[mode]),
                    "rounds": [{k: x[k] for k in ROUND_KEYS} for x in rounds[mode]],
                    "server_command": server.command.replace(common.ROOT + os.sep, ""),  # no machine paths
                    "precision": health[mode].get("precision"), "batching": stats,
                    "mean_texts_per_batch": stats["texts"] / stats["batches"] if stats.get("batches") else None,
                }
        finally:
            for server in servers.values():
                server.stop()
    reference = dict(max(references, key=lambda x: x["texts_per_s_best"]))
    reference["rounds_texts_per_s_best"] = [x["texts_per_s_best"] for x in references]
    reference["request_batches"] = {k: {**max((x["request_batches"][k] for x in references),
                                              key=lambda v: v["texts_per_s"]),
                                        "rounds_texts_per_s": [x["request_batches"][k]["texts_per_s"] for x in references]}
                                    for k in references[0]["request_batches"]}
    for res in results.values():
        if "error" not in res and res["texts_per_s"]:
            res["x_predictor_batch"] = res["texts_per_s"] / reference["texts_per_s_best"]
            res["x_predictor_batch_median_of_rounds"] = statistics.median(
                x["x_predictor_batch_this_round"] for x in res["rounds"])

    rows = [{"mode": "predictor alone", "texts_s": reference["texts_per_s_best"], "ratio": 1.0,
             "per_call": reference["num_texts"]}]
    for k, v in reference["request_batches"].items():
        rows.append({"mode": f"predictor alone, {k} request(s) per call", "texts_s": v["texts_per_s"],
                     "ratio": v["texts_per_s"] / reference["texts_per_s_best"],
                     "paired": statistics.median(a / x["texts_per_s_best"] for a, x in
                                                 zip(v["rounds_texts_per_s"], references)),
                     "per_call": v["texts"] / v["calls"]})
    for mode, res in results.items():
        if "error" in res:
            continue
        rows.append({"mode": f"serve.py, {mode}", "texts_s": res["texts_per_s"], "req_s": res["requests_per_s"],
                     "p50": res["latency_ms_p50"], "p99": res["latency_ms_p99"], "ratio": res.get("x_predictor_batch"),
                     "paired": res.get("x_predictor_batch_median_of_rounds"),
                     "per_call": res["mean_texts_per_batch"], "client_cpu": res["client_cpu_share"],
                     "failed": res["requests_failed"]})
    print()
    print(common.format_table(rows, [
        ("mode", "case", None), ("texts_s", "texts/s", ".1f"), ("req_s", "requests/s", ".1f"),
        ("p50", "p50 ms", ".1f"), ("p99", "p99 ms", ".1f"), ("per_call", "texts per predict call", ".1f"),
        ("ratio", f"x predictor (batch {args.batch_size})", ".2f"), ("paired", "median of rounds", ".2f"),
        ("client_cpu", "clients' CPU share", ".1%"), ("failed", "failed", "d"),
    ]))
    header = common.result_header("serve", __file__, args, argv)
    machine = header["machine"]
    features = reference.get("cpu_features", {})
    print(f"\n{machine['cpu']} (flags {features.get('flags')}), {machine['cores']} cores, server threads "
          f"{env['OMP_NUM_THREADS']}, precision {reference['precision']}, {args.clients} clients x {args.requests} "
          f"requests of {args.texts_per_request} texts; load average {machine['load_average_1_5_15min']}; "
          f"{time.perf_counter() - start:.0f} s")
    header["settings"].pop("texts_range", None)
    header["settings"].pop("request_batch_sizes", None)
    payload = {
        **header,
        "description": "loopback load test of serve.py (client threads in the benchmark process, one keep-alive "
                       "connection each; their CPU share recorded) against the predictor's own throughput on the "
                       "same texts; best of --rounds rounds each, and the median of the ratios within a round",
        "versions": common.versions("paddle", "paddlenlp", "numpy", "fastapi", "uvicorn"),
        "env": env,
        "setup": {k: v for k, v in setup.items() if k != "cpu_features"},
        "cpu_features": features,
        "reference": {k: v for k, v in reference.items() if k != "cpu_features"},
        "results": results,
        "table": rows,
    }
    common.write_json(args.output, payload)
    return 0 if all("error" not in r and not r["requests_failed"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
