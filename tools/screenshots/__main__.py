"""``make screenshots``: bring the system up, photograph its pages into docs/screenshots/, bring it down.

``--system compose`` runs the docker-compose stack, ``--system embedded`` the embedded services (no Docker);
``auto`` (the default) takes compose where a Docker engine answers or can be started (tools/docker/engine.sh),
else embedded. The deployed service's ``/v1/model`` (the API container run as the Terraform task definition says,
against the AWS emulator) needs Docker whichever system is photographed; ``--no-deployed`` leaves it out.
Exits non-zero, naming the page, when a page shows an error or is blank (:mod:`clientml_testkit.screens`).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from clientml_testkit.compose import docker_engine, use_standins
from clientml_testkit.screens import PageError
from playwright.sync_api import Error as PlaywrightError

from screenshots import pages
from screenshots.browser import Camera, chromium
from screenshots.system import System

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _docker(wanted: bool, required: bool, standins: bool) -> Iterator[dict[str, str] | None]:
    """A Docker engine's environment (stopped afterwards if started here), or None when not wanted or, unless
    ``required``, when none can be started; with ``standins``, the images build on the stand-in base images."""
    if not wanted:
        yield None
        return
    try:
        engine = docker_engine()
        docker = engine.__enter__()
    except (OSError, subprocess.CalledProcessError) as exc:
        if required:
            raise
        print(f"no Docker engine ({exc}): the embedded services", flush=True)
        yield None
        return
    try:
        if standins:
            use_standins(docker)
        yield docker
    finally:
        engine.__exit__(None, None, None)


@contextlib.contextmanager
def _system(kind: str, work: Path, clients: int, docker: dict[str, str] | None) -> Iterator[System]:
    if docker is not None and kind != "embedded":
        from screenshots.compose_stack import compose_system

        with compose_system(work / "compose", clients, docker) as system:
            yield system
    else:
        from screenshots.embedded import embedded_system

        with embedded_system(work / "embedded", clients) as system:
            yield system


def _photographed(camera: Camera, system: System, *steps: Callable[[Camera, System], None]) -> None:
    """Run the steps; a page that misbehaves (a click or a wait that fails) fails naming its picture."""
    for step in steps:
        try:
            step(camera, system)
        except PlaywrightError as exc:
            raise PageError(f"{camera.current}: {exc.message.splitlines()[0]}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--work", type=Path, default=ROOT / ".screenshots", help="the system's state and logs")
    parser.add_argument("--system", choices=("auto", "compose", "embedded"), default="auto")
    parser.add_argument("--clients", type=int, default=3000, help="clients generated for the first data drop")
    parser.add_argument("--no-deployed", dest="deployed", action="store_false", help="skip deployed-model.png")
    parser.add_argument(
        "--standins", action="store_true", help="build on the stand-in base images (no Docker Hub: as the tests)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    needs_docker = args.system == "compose" or args.deployed
    try:
        with (
            _docker(args.system != "embedded" or args.deployed, needs_docker, args.standins) as docker,
            _system(args.system, work, args.clients, docker) as system,
        ):
            print(f"system up after {time.monotonic() - started:.0f} s", flush=True)
            with chromium() as browser:
                camera = Camera(browser.new_page(), args.out)
                _photographed(camera, system, pages.airflow_login, pages.airflow_pages, pages.mlflow_pages)
                _photographed(camera, system, pages.api_pages, pages.report_pages)
            if args.deployed and docker is not None:
                from screenshots.deployed import deployed_api

                with deployed_api(work / "deployed", system.models_dir, docker) as (url, key), chromium() as browser:
                    camera = Camera(browser.new_page(), args.out)
                    _photographed(camera, system, lambda camera, _: pages.deployed_model(camera, url, key))
    except PageError as exc:
        print(f"make screenshots: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        # The system did not come up (e.g. an image build without Docker Hub): what the command said, not a traceback.
        output = (exc.stderr or exc.stdout or "").strip().splitlines()[-20:]
        print(
            f"make screenshots: {' '.join(map(str, exc.cmd))} failed ({exc.returncode}):",
            *output,
            sep="\n",
            file=sys.stderr,
        )
        print("(on a machine without Docker Hub: make screenshots SCREENSHOTS_ARGS=--standins)", file=sys.stderr)
        return 1
    print(f"screenshots taken in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
