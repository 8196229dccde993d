"""``make screenshots``: bring the system up, photograph its pages into docs/screenshots/, bring it down.

The compose stack where Docker is available (or ``--system compose``), else the embedded services
(``--system embedded``); the deployed service's ``/v1/model`` needs Docker in both cases (the API container
run as the Terraform task definition says, against the AWS emulator). Exits non-zero, naming the page, when a
page shows an error or is blank (:mod:`clientml_testkit.screens`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from clientml_mle.features import unlabeled_rows
from clientml_testkit.screens import PageError

from screenshots import pages
from screenshots.browser import Camera, chromium
from screenshots.system import System

ROOT = Path(__file__).resolve().parents[2]


def _process_data_run(system: System, work: Path) -> str:
    """The last successful process_data run's id, as the pipeline summary recorded it."""
    import json

    summary = json.loads((work / "pipeline.json").read_text(encoding="utf-8"))
    runs = [run["run_id"] for run in summary["dag_runs"] if run["dag_id"] == pages.PROCESS_DATA]
    return str(runs[-1])


@contextlib.contextmanager
def _system(kind: str, work: Path, clients: int) -> Iterator[tuple[System, str]]:
    from screenshots.embedded import embedded_system

    with embedded_system(work, clients) as system:
        yield system, _process_data_run(system, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--work", type=Path, default=ROOT / ".screenshots", help="the system's state and logs")
    parser.add_argument("--system", choices=("auto", "compose", "embedded"), default="auto")
    parser.add_argument("--clients", type=int, default=3000, help="clients generated for the embedded run")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with _system(args.system, args.work.resolve(), args.clients) as (system, run_id), chromium() as browser:
            camera = Camera(browser.new_page(), args.out)
            pages.airflow_login(camera, system)
            pages.airflow_pages(camera, system, run_id)
            pages.mlflow_pages(camera, system)
            client_id = str(unlabeled_rows(system.warehouse_url).sort_values("client_id").iloc[0]["client_id"])
            pages.api_pages(camera, system, client_id)
            pages.report_pages(camera, system)
    except PageError as exc:
        print(f"make screenshots: {exc}", file=sys.stderr)
        return 1
    print(f"screenshots taken in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
