"""``make bench-train``: ``clientml train`` on 1,000,000 generated clients, timed (target: < 10 minutes).

Generates the clients once into ``.bench/train/data`` (reused by later runs), builds ``feature_store`` in
a DuckDB warehouse with ``clientml pipeline`` (also reused), then times ``clientml train`` end to end as a
user runs it: waiting for the table, reading it, model selection (search on a seeded sample of at most
``--max-search-rows`` training rows), the final fit on every training row, the test evaluation, the
report, the bundle and MLflow tracking (a local SQLite store). Writes ``train.json`` and ``train.md``
next to the data and exits non-zero when training exceeds ``--limit-seconds``.

    python modules/ds/bench/bench_train.py [--clients 1000000] [--search-seconds 180] [--search-trials 6]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from clientml_testkit.bench import MB, Measured, code_state, load_average, machine, run_measured

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
CLIENTML = str(BIN / "clientml")


def run(cmd: list[str], env: dict[str, str]) -> Measured:
    """Run a command to its end, its stderr streamed: wall and CPU time, peak RSS of its process tree."""
    print("$", " ".join(cmd), flush=True)
    measured = run_measured(cmd, env=env)
    if measured.returncode != 0:
        sys.exit(f"command failed ({measured.failure()}): {' '.join(cmd)}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=REPO / ".bench" / "train")
    parser.add_argument("--search-seconds", type=float, default=180.0)
    parser.add_argument("--search-trials", type=int, default=6)
    # One LightGBM thread: on this shared 2-core machine two threads ran a 300k-row fit 2x slower (7 s vs 15 s).
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--max-search-rows", type=int, default=100_000)
    parser.add_argument("--limit-seconds", type=float, default=600.0)
    args = parser.parse_args()

    root = args.dir.resolve() / f"c{args.clients}-s{args.seed}"
    data, warehouse = root / "data", root / "warehouse.duckdb"
    env = {
        "CLIENTML_TRAIN_N_JOBS": str(args.n_jobs),
        "CLIENTML_DS_MAX_SEARCH_ROWS": str(args.max_search_rows),
        "CLIENTML_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "CLIENTML_MLFLOW_ARTIFACTS_DIR": str(root / "mlartifacts"),
    }
    timings: dict[str, Any] = {}
    if not (data / "ground_truth.csv").is_file():
        timings["generate_s"] = run(
            [CLIENTML, "generate", "--out", str(data), "--clients", str(args.clients), "--seed", str(args.seed)], env
        ).seconds
    if not warehouse.is_file():
        timings["pipeline_s"] = run(
            [
                CLIENTML,
                "pipeline",
                "--clients",
                str(data / "clients.csv"),
                "--sales",
                str(data / "sales.csv"),
                "--warehouse",
                f"duckdb:///{warehouse}",
                "--airflow-home",
                str(root / "airflow"),
                "--no-loop",  # the ETL only: the training timed is clientml train's, below
            ],
            env,
        ).seconds
    models = root / "models"
    shutil.rmtree(models, ignore_errors=True)
    measured = run(
        [
            CLIENTML,
            "train",
            "--warehouse",
            f"duckdb:///{warehouse}",
            "--models-dir",
            str(models),
            "--search-seconds",
            str(args.search_seconds),
            "--search-trials",
            str(args.search_trials),
            "--ground-truth",
            str(data / "ground_truth.csv"),
            "--wait-timeout",
            "10",
        ],
        env,
    )
    seconds = measured.seconds
    summary = json.loads(measured.stdout)
    selection = summary["selection"]
    lgbm = selection["searches"].get("lightgbm", {})
    result = {
        "clients": args.clients,
        "seed": args.seed,
        "train_seconds": round(seconds, 1),
        "limit_seconds": args.limit_seconds,
        "within_limit": seconds <= args.limit_seconds,
        "cpu_seconds": round(measured.cpu_seconds, 1),
        "peak_rss_mb": round(measured.peak_rss / MB),
        "machine": machine(("lightgbm", "sklearn", "optuna")),
        "load_average_at_end": load_average(),
        "code": code_state(REPO, ["modules/ds/src", "modules/mle/src"]),
        "n_jobs": args.n_jobs,
        "search_seconds": args.search_seconds,
        "search_trials": args.search_trials,
        "max_search_rows": args.max_search_rows,
        "lightgbm_trials_done": lgbm.get("n_trials_done"),
        "search_stopped_by_time": lgbm.get("stopped_by_time"),
        "selection_seconds": selection["seconds"],
        "winner": selection["winner"],
        "cv_roc_auc": selection["cv_roc_auc"],
        "train_rows": summary["training_data"]["train_rows"],
        "test_rows": summary["training_data"]["test_rows"],
        "test_roc_auc": summary["metrics"]["roc_auc"],
        "test_roc_auc_ci95": [summary["metrics"]["roc_auc_ci95_low"], summary["metrics"]["roc_auc_ci95_high"]],
        "best_achievable_roc_auc": (summary.get("ground_truth") or {}).get("best_achievable_roc_auc"),
        **timings,
    }
    (root / "train.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    lines = ["# clientml train benchmark", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result.items()]
    (root / "train.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if not result["within_limit"]:
        sys.exit(f"training took {seconds:.0f} s, over the {args.limit_seconds:.0f} s limit")


if __name__ == "__main__":
    main()
