"""The deployment's offline checks, each one test: `terraform fmt -check`, `terraform validate`, `terraform test`
(mocked AWS: the design of modules/deployment/terraform), checkov with zero failed checks, actionlint on the
workflows. They run through modules/deployment/checks/run.sh, the script `make deploy-check` runs, so the two
cannot drift apart. About a minute in all; nothing reaches AWS.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "modules" / "deployment" / "checks" / "run.sh"


def _run(check: str) -> str:
    """Run one check; fail with its whole output when it fails, return the output when it passes."""
    result = subprocess.run(
        ["bash", str(RUN), check],
        cwd=ROOT,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{check} failed (exit {result.returncode}):\n{output}"
    return output


def test_terraform_is_formatted() -> None:
    _run("fmt")


def test_terraform_validates() -> None:
    assert "The configuration is valid" in _run("validate")


def test_terraform_tests_hold_the_design() -> None:
    output = _run("test")
    assert "Success!" in output and " 0 failed" in output, output


def test_checkov_finds_no_failed_check() -> None:
    output = _run("checkov")
    assert "Failed checks: 0" in output, output


def test_workflows_pass_actionlint() -> None:
    assert "workflow files valid" in _run("actionlint")
