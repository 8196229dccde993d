"""Serving benchmark: the clientml prediction API against a bare FastAPI endpoint (the framework's ceiling)
and ``mlflow models serve``, same model, same workers.

    python modules/mle/bench/bench_serve.py [--workers 2] [--duration 10] [--max-requests 5000]
    python modules/mle/bench/bench_serve.py --warehouse URL --models-dir DIR --tracking-uri URI --model-uri URI

1. Generates a feature store (``--clients``, DuckDB in a temporary directory), trains the default model
   with MLflow tracking into a temporary SQLite store (so the registered model, the pyfunc serving the
   bundle, is logged by the project's own tracking code and its model URI is used), and loads the bundle.
   With ``--models-dir`` (and the warehouse, tracking URI and model URI of that training, e.g. ``clientml
   train``'s), that models directory's champion is measured instead.
2. In process: the fast predictor's single-record latency (validate + encode + trees, 2,000 calls), a
   10,000-record batch, and the sklearn Pipeline's single-record latency for reference.
3. Starts ``clientml serve`` ``--starts`` times (5) from nothing: the time from the process start until
   every worker has logged that its model is verified and ``/health/ready`` answers 200 (the median).
4. Serves on 127.0.0.1, one server at a time, with ``--workers`` processes each: our API (``clientml
   serve``), a bare FastAPI endpoint answering a constant under the same uvicorn settings
   (``bare_app.py``), and ``mlflow models serve --env-manager local``; the resident memory of each worker.
5. From a separate client process (``serve_client.py``: asyncio, raw HTTP/1.1 keep-alive connections,
   one per concurrent request stream) measures single-record throughput and p50/p99 latency at concurrency
   1, 16 and 64 (each level bounded by ``--duration`` seconds and ``--max-requests`` requests, after a
   warm-up), and the latency of a 10,000-record batch (median of 5; not for the bare endpoint).
6. Prints a markdown table with the ratios and writes it to ``.bench/serve.md``.

Only loopback traffic; every loop is bounded; every server is stopped (its process group killed if it
does not exit) and the temporary directory removed. The client shares the machine's CPUs with the
server under test, so the figures are a lower bound of what the servers can do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np
import orjson
from clientml_testkit.bench import code_state, machine
from clientml_testkit.data import build_warehouse
from clientml_testkit.servers import free_port, serving
from serve_startup import cold_starts, tree_cpu_seconds, worker_rss

REPO_ROOT = Path(__file__).resolve().parents[3]
LEVELS = (1, 16, 64)
WARMUP_REQUESTS = 300
STARTUP_TIMEOUT_S = 180.0
BATCH_REPEATS = 5
WORKER_READY = "ready: fast path verified"  # the line each worker logs once its model is verified
BARE_APP = Path(__file__).with_name("bare_app.py")


# --- the load client (serve_client.py, in its own process) --------------------------------------

CLIENT = Path(__file__).with_name("serve_client.py")


def run_client(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """One measurement by the load client (``serve_client.py``) in its own process: its JSON result."""
    path = workdir / f"client-{time.monotonic_ns()}.json"
    path.write_bytes(orjson.dumps(spec))
    done = subprocess.run([sys.executable, str(CLIENT), str(path)], capture_output=True, timeout=timeout, check=False)
    path.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"client failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


# --- preparation ----------------------------------------------------------------------------------


@dataclass
class Prepared:
    models_dir: Path
    model_uri: str
    tracking_uri: str
    bundle: Any
    records: list[dict[str, Any]]


def prepare(root: Path, n_clients: int, seed: int) -> Prepared:
    """Generated clients, their feature store, the default model trained and tracked (see the docstring)."""
    from clientml_mle.estimators import default_estimator
    from clientml_mle.features import training_frame
    from clientml_mle.tracking import MlflowTracker
    from clientml_mle.train import train
    from clientml_synthetic import generate

    data = root / "data"
    generate(data, n_clients=n_clients, seed=seed, progress=False)
    url = build_warehouse(data, root)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MlflowTracker(
        tracking_uri, model_name="bench-serve", experiment="bench-serve", artifact_location=root / "mlartifacts"
    )
    models_dir = root / "models"
    result = train(
        default_estimator, training_frame(url), models_dir=models_dir, tracking=tracker, n_boot=50, seed=seed
    )
    assert result.tracking is not None
    return prepared(url, models_dir, tracking_uri, result.tracking.model_uri)


def prepared(url: str, models_dir: Path, tracking_uri: str, model_uri: str) -> Prepared:
    """The champion bundle of ``models_dir`` (LATEST without one) and 2,000 feature-store rows as records."""
    from clientml_de.warehouse import connect
    from clientml_mle.bundle import load_bundle
    from clientml_mle.features import latest_rows
    from clientml_mle.pointers import serving_pointer

    warehouse = connect(url)
    try:
        ids = warehouse.table("feature_store").select("client_id").limit(2000).to_pandas()["client_id"].tolist()
    finally:
        warehouse.close()
    bundle = load_bundle(models_dir, pointer=serving_pointer(models_dir)[0])
    names = [f.name for f in bundle.manifest.features]
    rows = latest_rows(url, ids)[names]
    records: list[dict[str, Any]] = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")  # type: ignore[assignment]
    return Prepared(models_dir, model_uri, tracking_uri, bundle, records)


# --- measurements ---------------------------------------------------------------------------------


def in_process(prepared: Prepared, calls: int = 2000) -> dict[str, Any]:
    from clientml_mle.serve.fastpath import compile_bundle, verify

    bundle, records = prepared.bundle, prepared.records
    predictor = verify(compile_bundle(bundle), bundle)
    for record in records[:200]:
        predictor.predict_records([record])
    times = []
    for i in range(calls):
        started = time.perf_counter()
        predictor.predict_records([records[i % len(records)]])
        times.append(time.perf_counter() - started)
    # The three steps of one record apart (p50 each): what the model itself costs a request.
    steps: dict[str, list[float]] = {"validate": [], "encode": [], "score": []}
    for i in range(calls):
        started = time.perf_counter()
        valid = predictor.validator.validate_records([records[i % len(records)]])
        encoded = time.perf_counter()
        matrix = predictor.encode(valid)
        scored = time.perf_counter()
        predictor.predict_matrix(matrix)
        ended = time.perf_counter()
        for step, seconds in zip(steps, (encoded - started, scored - encoded, ended - scored), strict=True):
            steps[step].append(seconds)
    batch = (records * (10_000 // len(records) + 1))[:10_000]
    batch_times = []
    for _ in range(BATCH_REPEATS):
        started = time.perf_counter()
        predictor.predict_records(batch)
        batch_times.append(time.perf_counter() - started)
    pipeline_times = []
    for i in range(200):
        frame = bundle.feature_frame([records[i % len(records)]])
        started = time.perf_counter()
        bundle.predict_proba(frame)
        pipeline_times.append(time.perf_counter() - started)
    return {
        "p50_us": float(np.percentile(times, 50) * 1e6),
        "p99_us": float(np.percentile(times, 99) * 1e6),
        "batch_ms": statistics.median(batch_times) * 1000,
        "pipeline_p50_us": float(np.percentile(pipeline_times, 50) * 1e6),
        "model": f"{predictor.model_type} ({predictor.kind}"
        + (f", {len(predictor.forest.roots)} trees)" if predictor.forest is not None else ")"),
        **{f"{step}_us": float(np.percentile(seconds, 50) * 1e6) for step, seconds in steps.items()},
    }


def bench_server(
    port: int,
    path: str,
    *,
    single_bodies: list[bytes],
    batch_body: bytes | None,
    headers: dict[str, str],
    args: argparse.Namespace,
    workdir: Path,
    server_pid: int,
) -> dict[str, Any]:
    """Single-record load at each level, with the server's CPU time per request (all its processes), then
    (with a ``batch_body``) the 10,000-record batch."""
    bodies = [b.decode() for b in single_bodies]
    out: dict[str, Any] = {"levels": {}}
    budget = args.duration + 120
    for i, level in enumerate(args.levels):
        spec = {
            "mode": "load",
            "port": port,
            "path": path,
            "headers": headers,
            "bodies": bodies,
            "concurrency": level,
            "duration": args.duration,
            "max_requests": args.max_requests,
            "warmup": WARMUP_REQUESTS if i == 0 else 0,
        }
        cpu = tree_cpu_seconds(server_pid)
        result = out["levels"][level] = run_client(spec, workdir, budget)
        served = result["requests"] + int(spec["warmup"])
        result["server_cpu_us"] = (tree_cpu_seconds(server_pid) - cpu) / served * 1e6
        print(
            f"    concurrency {level:>3}: {result['throughput']:8.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
            f"p99 {result['p99_ms']:.2f} ms  server CPU {result['server_cpu_us']:.0f} µs/request  "
            f"errors {result['errors']}",
            flush=True,
        )
    if batch_body is None:
        return out
    spec = {
        "mode": "batch",
        "port": port,
        "path": path,
        "headers": headers,
        "body": batch_body.decode(),
        "repeats": BATCH_REPEATS,
    }
    out["batch"] = run_client(spec, workdir, 600)
    print(f"    10,000-record batch: median {out['batch']['median_ms']:.0f} ms", flush=True)
    return out


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "n/a"


def _share(a: float, b: float) -> str:
    return f"{100 * a / b:.0f}%" if b else "n/a"


def _rss(result: dict[str, Any]) -> str:
    workers = " / ".join(f"{mb:.0f}" for mb in result["rss"]["workers_mb"])
    supervisor = result["rss"]["supervisor_mb"]
    return f"{workers} MB" + (f" (supervisor {supervisor:.0f} MB)" if supervisor is not None else "")


def render(args: argparse.Namespace, info: str, figures: dict[str, Any]) -> str:
    """The markdown report of :func:`main`'s figures."""
    local, starts = figures["local"], figures["starts"]
    ours, bare, theirs = figures["ours"], figures["bare"], figures["theirs"]
    runs = ", ".join(f"{s:.2f}" for s in starts["runs_s"])
    lines = [
        "# Serving benchmark: clientml API vs a bare FastAPI endpoint and `mlflow models serve`",
        "",
        f"Machine: {info}.",
        f"Model: {local['model']}, {figures['bundle']}; {args.workers} worker process(es) per server; client: "
        f"asyncio raw HTTP/1.1 keep-alive, separate process on the same machine; each level bounded by "
        f"{args.duration:g} s or {args.max_requests} requests.",
        "",
        f"- `clientml serve` from the process start to every worker verified and `/health/ready` 200: "
        f"**{starts['median_s']:.2f} s**, median of {len(starts['runs_s'])} cold starts ({runs} s); "
        f"{starts['median_cpu_s']:.2f} s of CPU by then (all its processes, median)",
        f"- resident memory per worker after the load: clientml API {_rss(ours)}; bare FastAPI endpoint "
        f"{_rss(bare)}; mlflow models serve {_rss(theirs)}",
        "",
        "| measure | clientml API | bare FastAPI endpoint | API / bare | mlflow models serve | API / mlflow |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for level in args.levels:
        a, c, b = ours["levels"][level], bare["levels"][level], theirs["levels"][level]
        lines.append(
            f"| single record, concurrency {level}: throughput (req/s) | {a['throughput']:,.0f} | "
            f"{c['throughput']:,.0f} | **{_share(a['throughput'], c['throughput'])}** | {b['throughput']:,.0f} | "
            f"**{_ratio(a['throughput'], b['throughput'])}** |"
        )
        lines.append(
            f"| single record, concurrency {level}: p50 / p99 latency (ms) | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | "
            f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f} | | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | |"
        )
        lines.append(
            f"| single record, concurrency {level}: server CPU per request (µs, all processes) | "
            f"{a['server_cpu_us']:.0f} | {c['server_cpu_us']:.0f} | | {b['server_cpu_us']:.0f} | |"
        )
    ours_ms, theirs_ms = ours["batch"]["median_ms"], theirs["batch"]["median_ms"]
    lines.append(
        f"| 10,000-record batch over HTTP, median of {BATCH_REPEATS} (ms) | {ours_ms:.0f} | | | {theirs_ms:.0f} | "
        f"{theirs_ms / ours_ms:.1f}x faster |"
    )
    errors = [sum(v["errors"] for v in result["levels"].values()) for result in (ours, bare, theirs)]
    lines.append(f"| errors (non-200) | {errors[0]} | {errors[1]} | | {errors[2]} | |")
    lines += [
        "",
        "In process (no HTTP):",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| fast predictor, single record (validate + encode + score), p50 / p99 over 2,000 calls | "
        f"{local['p50_us']:.0f} / {local['p99_us']:.0f} µs |",
        f"| the same steps apart, p50: validate / encode / score | {local['validate_us']:.1f} / "
        f"{local['encode_us']:.1f} / {local['score_us']:.1f} µs |",
        f"| fast predictor, 10,000 records, median of {BATCH_REPEATS} | {local['batch_ms']:.0f} ms |",
        f"| sklearn Pipeline `predict_proba` on a one-row DataFrame, p50 (reference) | "
        f"{local['pipeline_p50_us']:.0f} µs |",
        f"| max abs difference of the two servers' probabilities on the 10,000-record batch | "
        f"{figures['agreement']:.1e} |",
        "",
        "Targets:",
        "",
        f"- ready <= 3 s after the start: {'met' if starts['median_s'] <= 3 else 'NOT met'} "
        f"({starts['median_s']:.2f} s)",
    ]
    shares = {level: ours["levels"][level]["throughput"] / bare["levels"][level]["throughput"] for level in args.levels}
    worst = min(shares, key=lambda level: shares[level])
    lines += [
        f"- single-record throughput >= 70% of the bare endpoint's: "
        f"{'met' if shares[worst] >= 0.7 else 'NOT met'} (lowest {shares[worst]:.0%}, at concurrency {worst})",
        f"- single-record in-process p50 < 1 ms: {'met' if local['p50_us'] < 1000 else 'NOT met'} "
        f"({local['p50_us']:.0f} µs)",
        f"- 10,000-record batch < 150 ms over HTTP: {'met' if ours_ms < 150 else 'NOT met'} "
        f"({ours_ms:.0f} ms; {local['batch_ms']:.0f} ms in process)",
    ]
    if 16 in args.levels:
        ratio = ours["levels"][16]["throughput"] / theirs["levels"][16]["throughput"]
        lines.append(
            f"- >= 2x the throughput of mlflow models serve at concurrency 16: "
            f"{'met' if ratio >= 2 else 'NOT met'} ({ratio:.1f}x)"
        )
    return "\n".join(lines) + "\n"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level (at most)")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests per concurrency level (at most)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=list(LEVELS))
    parser.add_argument("--starts", type=int, default=5, help="cold starts of clientml serve to time")
    parser.add_argument("--clients", type=int, default=5000, help="generated clients to train on")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouse", help="with --models-dir: the feature store the model was trained on")
    parser.add_argument("--models-dir", type=Path, help="measure this models directory's champion instead")
    parser.add_argument("--tracking-uri", help="with --models-dir: the MLflow store of its training")
    parser.add_argument("--model-uri", help="with --models-dir: the registered model, e.g. models:/NAME@champion")
    parser.add_argument("--out", type=Path, default=Path(".bench/serve.md"))
    args = parser.parse_args()
    given = [args.warehouse, args.models_dir, args.tracking_uri, args.model_uri]
    if any(given) and not all(given):
        parser.error("--warehouse, --models-dir, --tracking-uri and --model-uri go together")
    return args


def main() -> None:
    args = _arguments()
    info = f"{machine()}; load average at start {os.getloadavg()[0]:.2f}; {code_state(REPO_ROOT, ['modules/mle/src'])}"
    print(f"machine: {info}", flush=True)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="clientml-bench-serve-") as tmp:
        root = Path(tmp)
        if args.models_dir is not None:
            prepared_ = prepared(args.warehouse, args.models_dir.resolve(), args.tracking_uri, args.model_uri)
            figures["bundle"] = f"champion of {args.models_dir}"
        else:
            print("preparing data, model, bundle and MLflow model ...", flush=True)
            prepared_ = prepare(root, args.clients, args.seed)
            figures["bundle"] = f"trained on {args.clients} generated clients"
        print(f"  bundle {prepared_.bundle.manifest.version}; MLflow model {prepared_.model_uri}", flush=True)
        local = figures["local"] = in_process(prepared_)
        print(
            f"in process: single record p50 {local['p50_us']:.0f} µs, p99 {local['p99_us']:.0f} µs; "
            f"10,000 records {local['batch_ms']:.0f} ms",
            flush=True,
        )

        records = prepared_.records
        batch = (records * (10_000 // len(records) + 1))[:10_000]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": prepared_.tracking_uri}
        env.pop("CLIENTML_API_KEY", None)
        # mlflow starts its server as `uvicorn ...`, found on PATH: the one of this environment.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        options: dict[str, Any] = {"env": env, "timeout_s": STARTUP_TIMEOUT_S}
        load: dict[str, Any] = {"headers": {}, "args": args, "workdir": root}
        single = [orjson.dumps({"records": [r]}) for r in records]

        port = free_port()
        ours_cmd = [
            str(Path(sys.executable).with_name("clientml")),
            *("serve", "--models-dir", str(prepared_.models_dir), "--port", str(port), "--workers", str(args.workers)),
        ]
        print(f"clientml serve: {args.starts} cold starts ({args.workers} workers)", flush=True)
        starts = figures["starts"] = cold_starts(
            args.starts, command=ours_cmd, port=port, workers=args.workers, ready_text=WORKER_READY,
            log=root / "starts.log", **options,
        )  # fmt: skip
        print(
            f"  ready after {', '.join(f'{s:.2f}' for s in starts['runs_s'])} s "
            f"({starts['median_cpu_s']:.2f} s of CPU, median)",
            flush=True,
        )
        print(f"clientml API on 127.0.0.1:{port} ({args.workers} workers)", flush=True)
        ready = (WORKER_READY, args.workers)
        with serving(
            ours_cmd, port=port, ready_path="/health/ready", ready_log=ready, log=root / "ours.log", **options
        ) as process:
            ours = bench_server(
                port,
                "/v1/predict",
                single_bodies=single,
                batch_body=orjson.dumps({"records": batch}),
                server_pid=process.pid,
                **load,
            )
            ours["rss"] = worker_rss(process.pid)

        port = free_port()
        bare_cmd = [sys.executable, str(BARE_APP), str(port), str(args.workers)]
        print(f"bare FastAPI endpoint on 127.0.0.1:{port} ({args.workers} workers)", flush=True)
        with serving(bare_cmd, port=port, ready_path="/health/ready", log=root / "bare.log", **options) as process:
            bare = bench_server(
                port, "/v1/predict", single_bodies=single, batch_body=None, server_pid=process.pid, **load
            )
            bare["rss"] = worker_rss(process.pid)

        port = free_port()
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        theirs_cmd = [
            *(mlflow_bin, "models", "serve", "-m", prepared_.model_uri, "--env-manager", "local"),
            *("-w", str(args.workers), "-h", "127.0.0.1", "-p", str(port)),
        ]
        print(f"mlflow models serve on 127.0.0.1:{port} ({args.workers} workers)", flush=True)
        with serving(theirs_cmd, port=port, ready_path="/ping", log=root / "mlflow.log", **options) as process:
            theirs = bench_server(
                port,
                "/invocations",
                single_bodies=[orjson.dumps({"dataframe_records": [r]}) for r in records],
                batch_body=orjson.dumps({"dataframe_records": batch}),
                server_pid=process.pid,
                **load,
            )
            theirs["rss"] = worker_rss(process.pid)

        ours_p = np.array([p["probability"] for p in orjson.loads(ours["batch"]["body"])["predictions"]])
        # The registered model's pyfunc answers one {"probability", "label"} record per row (mlflow_model.py).
        theirs_p = np.array([p["probability"] for p in orjson.loads(theirs["batch"]["body"])["predictions"]])
        figures.update(ours=ours, bare=bare, theirs=theirs, agreement=float(np.max(np.abs(ours_p - theirs_p))))

    table = render(args, info, figures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table, encoding="utf-8")
    print()
    print(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
