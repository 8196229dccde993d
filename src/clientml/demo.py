"""What ``make demo`` shows between its commands.

- ``python -m clientml.demo loop SUMMARY.json``: the monitoring loop's outcome in a ``clientml pipeline``
  summary, in a few lines (each drift decision, each training, the predictions written);
- ``python -m clientml.demo serve --models-dir DIR --warehouse URL``: serve the champion, ask it for one
  prediction, print it, stop. The server is the real ``clientml serve`` in its own process on a free loopback
  port; it is stopped before this exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

_READY_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"clientml serve exited with code {server.returncode} before it was ready")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"clientml serve was not ready within {_READY_TIMEOUT_S:.0f} s")


def _one_client(warehouse_url: str) -> str:
    from clientml_mle.features import unlabeled_rows

    rows = unlabeled_rows(warehouse_url)
    if rows.empty:
        raise RuntimeError("feature_store has no unlabeled client to score")
    return str(rows.sort_values("client_id").iloc[0]["client_id"])


def show_loop(summary_file: Path) -> None:
    """Print the monitoring loop of a ``clientml pipeline`` summary, a line per drift decision and training in
    the order they ran, then the predictions written."""
    summary: dict[str, Any] = json.loads(summary_file.read_text(encoding="utf-8"))
    loop = summary["loop"]
    drifts, trainings = iter(loop["drift"]), iter(loop["training"])
    for run in summary["dag_runs"]:
        if run["dag_id"] == "monitor_drift":
            drift = next(drifts)
            champion = drift["model_version"] or "none yet"
            verdict = "drift found" if drift["drifted"] else "no drift"
            asks = "retraining asked for" if drift["retrain"] else "no retraining"
            why = "; ".join(drift["reasons"]) or "nothing moved beyond the thresholds"
            print(f"monitor_drift (champion: {champion}): {verdict}; {asks}: {why}")
            print(f"  drift report: {drift['report_path']}")
        elif run["dag_id"] == "train_model":
            print(f"train_model: {next(trainings)['outcome']}")
    predictions = loop["predictions"] or {}
    written = f"{predictions.get('rows', 0):,} rows, model {predictions.get('model_version')}"
    print(f"predictions: {written}" + (f" ({predictions['skipped']})" if predictions.get("skipped") else ""))


def serve_one(models_dir: Path, warehouse: str) -> None:
    """Serve the champion, ask it for one unlabeled client's prediction, print it and the model."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "clientml"),
        "serve",
        "--models-dir",
        str(models_dir),
        "--warehouse",
        warehouse,
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_ready(base, server)
        client_id = _one_client(warehouse)
        model: dict[str, Any] = httpx.get(f"{base}/v1/model", timeout=10).json()
        answer = httpx.post(f"{base}/v1/predict/clients", json={"client_ids": [client_id]}, timeout=10)
        answer.raise_for_status()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    bundle_dir = models_dir / model["version"]
    print(f"POST {base}/v1/predict/clients {{'client_ids': ['{client_id}']}}")
    print(json.dumps(answer.json(), indent=2))
    print(f"model: {model['name']} {model['version']} (threshold {model['threshold']:.3f})")
    reports = sorted(bundle_dir.rglob("report.html"))
    print(f"evaluation report: {reports[0] if reports else 'none in ' + str(bundle_dir)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    loop = commands.add_parser("loop", help="the loop's outcome in a clientml pipeline summary")
    loop.add_argument("summary", type=Path)
    serve = commands.add_parser("serve", help="serve the champion, print one prediction")
    serve.add_argument("--models-dir", type=Path, required=True)
    serve.add_argument("--warehouse", required=True)
    args = parser.parse_args(argv)
    if args.command == "loop":
        show_loop(args.summary)
    else:
        serve_one(args.models_dir, args.warehouse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
