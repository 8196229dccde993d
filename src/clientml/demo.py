"""The last step of ``make demo``: serve the champion, ask it for one prediction, print it, stop.

Run as ``python -m clientml.demo --models-dir DIR --warehouse URL``. The server is the real
``clientml serve`` in its own process on a free loopback port; it is stopped before this exits.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--warehouse", required=True)
    args = parser.parse_args(argv)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "clientml"),
        "serve",
        "--models-dir",
        str(args.models_dir),
        "--warehouse",
        args.warehouse,
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_ready(base, server)
        client_id = _one_client(args.warehouse)
        model: dict[str, Any] = httpx.get(f"{base}/v1/model", timeout=10).json()
        answer = httpx.post(f"{base}/v1/predict/clients", json={"client_ids": [client_id]}, timeout=10)
        answer.raise_for_status()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    bundle_dir = args.models_dir / model["version"]
    print(f"POST {base}/v1/predict/clients {{'client_ids': ['{client_id}']}}")
    print(json.dumps(answer.json(), indent=2))
    print(f"model: {model['name']} {model['version']} (threshold {model['threshold']:.3f})")
    reports = sorted(bundle_dir.rglob("report.html"))
    print(f"evaluation report: {reports[0] if reports else 'none in ' + str(bundle_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
