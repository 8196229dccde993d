"""``make docs-check``: every shell command in README.md is run here or by a named test.

A command is a line of one of the README's shell fences (```bash, ```sh, ```shell; other fences are
output, diagrams or synopses): a trailing ``\\`` joins the next line, and two spaces then ``#`` start a
comment. ``RUN`` lists the cheap commands, which this script runs in README order in a throwaway copy of
the tracked files (``.venv`` linked in), so nothing in the checkout changes. ``COVERED`` maps each heavy
command to the test (or CI entry) that runs it, with the text that shows it does; the mapping is checked,
not trusted. ``tests/docs/test_readme_commands.py``, a fast test of ``make test``, fails when a README
command is in neither, so a command added to the README without a run breaks CI.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELL_FENCES = frozenset({"bash", "sh", "shell"})
NEITHER = "neither run by docs-check (RUN) nor mapped to a test (COVERED)"
_COMMENT = re.compile(r"\s{2,}#.*$")
# Telemetry stays off in the commands run, as in the Makefile.
QUIET_ENV = {
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "CHECKPOINT_DISABLE": "1",
}


@dataclass(frozen=True)
class Covered:
    """A heavy README command and what runs it.

    ``test`` is a pytest node id (``path::function``) or a file CI executes; every string of ``shows`` must be
    in that function's source (the whole file for a plain file), and every ``(path, text)`` of ``helper`` in
    that file: the helper the test calls to run the command.
    """

    test: str
    shows: tuple[str, ...]
    helper: tuple[tuple[str, str], ...] = ()


# The cheap commands, run in this order in one throwaway copy (later ones use what earlier ones wrote). The copy's
# .venv is the checkout's, linked: nothing here may install into it (`make install` in the copy would point the
# checkout's editable installs at the copy), so `make install` is covered below instead.
RUN: tuple[str, ...] = (
    "make help",
    ".venv/bin/clientml --help",
    ".venv/bin/clientml generate --out data --clients 1000 --seed 7 --bad-rows 0.01",
    ".venv/bin/clientml pipeline --clients data/clients.csv --sales data/sales.csv"
    " --warehouse duckdb:///$PWD/wh.duckdb --no-loop",
    ".venv/bin/clientml train --warehouse duckdb:///$PWD/wh.duckdb --models-dir models --trainer default --no-tracking",
    ".venv/bin/clientml score --warehouse duckdb:///$PWD/wh.duckdb --models-dir models --out scores.csv --latest",
    "head -3 scores.csv",
    "cp .env.example .env",
    'sed -i "s/^CLIENTML_UID=.*/CLIENTML_UID=$(id -u)/; s/^CLIENTML_GID=.*/CLIENTML_GID=$(id -g)/" .env',
    'python3 -c "import secrets; print(secrets.token_urlsafe(24))"',
    'python3 -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"',
    "rm -rf data/sources data/reports && find modules/ds/models -mindepth 1 ! -name .gitkeep -delete",
)

_COMPOSE_TEST = "tests/compose/test_compose.py"
_COMPOSE_HELPER = "tools/testkit/src/clientml_testkit/compose.py"
_DEPLOYED = "tests/deployment/test_deployed_container.py"

COVERED: dict[str, Covered] = {
    "make demo": Covered("tests/test_demo.py::test_make_demo_on_a_small_drop", ('"demo"',)),
    "make test": Covered(".ci/run", ("make test",)),
    "make docs-check": Covered(
        "tests/docs/test_readme_commands.py::test_the_cheap_readme_commands_run_in_a_throwaway_copy",
        ("docs_check.run_commands(",),
        (("Makefile", "tools/docs_check/docs_check.py"),),
    ),
    "make install": Covered(".ci/run", ("make test",), (("Makefile", "test: install"),)),
    "docker compose up --build -d": Covered(
        f"{_COMPOSE_TEST}::test_up_runs_the_three_dags_hands_off", ('stack.compose("up"',)
    ),
    "curl -s localhost:8000/health/ready": Covered(
        f"{_COMPOSE_TEST}::test_up_runs_the_three_dags_hands_off",
        ("_ready(stack)",),
        ((_COMPOSE_TEST, '"/health/ready"'),),
    ),
    "curl -s -X POST localhost:8000/v1/predict/clients -H 'Content-Type: application/json'"
    ' -d \'{"client_ids": ["C0000003"]}\'': Covered(
        f"{_COMPOSE_TEST}::test_a_prediction_by_client_id_equals_clientml_score",
        ("_predict_client",),
        ((_COMPOSE_TEST, "/v1/predict/clients"),),
    ),
    "curl -s -X POST localhost:8082/auth/token -H 'Content-Type: application/json'"
    ' -d \'{"username": "admin", "password": "<AIRFLOW_ADMIN_PASSWORD>"}\'': Covered(
        f"{_COMPOSE_TEST}::test_a_new_drop_retrains_and_survives_a_killed_scheduler",
        ("stack.trigger(",),
        ((_COMPOSE_HELPER, '"/auth/token"'),),
    ),
    "curl -s -X POST localhost:8082/api/v2/dags/load_client_data/dagRuns -H 'Authorization: Bearer <token>'"
    " -H 'Content-Type: application/json' -d '{\"logical_date\": null}'": Covered(
        f"{_COMPOSE_TEST}::test_a_new_drop_retrains_and_survives_a_killed_scheduler",
        ("stack.trigger(",),
        ((_COMPOSE_HELPER, '/dagRuns", {"logical_date": None}'),),
    ),
    "docker compose down -v": Covered(f"{_COMPOSE_TEST}::stack", ('stack.compose("down", "--volumes"',)),
    ".venv/bin/clientml pipeline --clients ../shared/data/real/telco/clients.csv"
    " --sales ../shared/data/real/telco/sales.csv --warehouse duckdb:///$PWD/telco.duckdb"
    " --dataset-config configs/datasets/telco.yaml --no-loop": Covered(
        "modules/de/tests/test_pipeline_cli.py::test_real_dataset_gives_one_feature_row_per_valid_client",
        ('"--dataset-config"', '"configs"', '"datasets"'),
    ),
    # make deploy-check is `run.sh all`; this file runs each of its five checks through run.sh, a test each.
    "make deploy-check": Covered(
        "tests/deployment/test_terraform_checks.py",
        ('_run("fmt")', '_run("validate")', '_run("test")', '_run("checkov")', '_run("actionlint")'),
        (("Makefile", "checks/run.sh all"),),
    ),
    "make deploy": Covered(f"{_DEPLOYED}::test_make_deploy_serves_the_version_it_pins", ('world.make("deploy"',)),
    "make rollback": Covered(
        f"{_DEPLOYED}::test_make_rollback_returns_to_the_previous_release", ('world.make("rollback")',)
    ),
    "make destroy": Covered(f"{_DEPLOYED}::test_make_destroy_leaves_nothing", ('world.make("destroy")',)),
}


def readme_commands(markdown: str) -> list[str]:
    """The shell commands of a Markdown text's shell fences, continuation lines joined, comments dropped."""
    commands: list[str] = []
    for token in MarkdownIt().parse(markdown):
        if token.type != "fence" or token.info.strip() not in SHELL_FENCES:
            continue
        pending = ""
        for raw in token.content.splitlines():
            line = _COMMENT.sub("", raw).strip()
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            command, pending = pending + line, ""
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def _function_source(path: Path, name: str) -> str | None:
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    return None


def coverage_problems(command: str, covered: Covered) -> list[str]:
    """Why ``covered`` does not show that its test runs ``command`` (empty when it does)."""
    path_text, _, function = covered.test.partition("::")
    path = ROOT / path_text
    if not path.is_file():
        return [f"{command!r}: {path_text} does not exist"]
    source = _function_source(path, function) if function else path.read_text(encoding="utf-8")
    if source is None:
        return [f"{command!r}: no function {function} in {path_text}"]
    missing = [text for text in covered.shows if text not in source]
    problems = [f"{command!r}: {covered.test} does not contain {text!r}" for text in missing]
    for helper, text in covered.helper:
        helper_path = ROOT / helper
        if not helper_path.is_file() or text not in helper_path.read_text(encoding="utf-8"):
            problems.append(f"{command!r}: {helper} does not contain {text!r}")
    return problems


def problems(markdown: str | None = None) -> list[str]:
    """Every README command neither run nor covered, every stale entry, every mapping that does not hold."""
    commands = readme_commands(README.read_text(encoding="utf-8") if markdown is None else markdown)
    found: list[str] = []
    for command in commands:
        if command not in RUN and command not in COVERED:
            found.append(f"{command!r} is in README.md but {NEITHER}")
    listed = set(commands)
    stale = [command for command in [*RUN, *COVERED] if command not in listed]
    found += [f"{command!r} is listed but no longer in README.md" for command in stale]
    for command, covered in COVERED.items():
        found += coverage_problems(command, covered)
    return found


def tracked_copy(destination: Path) -> None:
    """The tracked files, modification times kept (so ``make install`` sees .venv up to date), and .venv."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True).stdout
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    (destination / ".venv").symlink_to(ROOT / ".venv")


def run_commands(workdir: Path) -> Iterator[tuple[str, float]]:
    """Run RUN's commands in ``workdir`` (a copy of the tracked files); each one's wall time."""
    environment = {**os.environ, **QUIET_ENV, "CLIENTML_STATE_DIR": str(workdir / ".clientml")}
    for command in RUN:
        start = time.monotonic()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            raise RuntimeError(f"{command!r} exited {result.returncode}:\n{output}")
        yield command, time.monotonic() - start


def main() -> int:
    found = problems()
    for problem in found:
        print(f"docs-check: {problem}", file=sys.stderr)
    if found:
        return 1
    for command, covered in COVERED.items():
        print(f"covered  {command}\n         by {covered.test}")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="docs-check-") as tmp:
        workdir = Path(tmp)
        tracked_copy(workdir)
        try:
            for command, seconds in run_commands(workdir):
                print(f"ran      {command}  ({seconds:.1f} s)")
        except RuntimeError as error:
            print(f"docs-check: {error}", file=sys.stderr)
            return 1
    print(f"docs-check: {len(RUN)} commands run, {len(COVERED)} covered by tests, {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
