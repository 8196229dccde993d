"""Terraform as the deploy commands and the emulator tests run it: one directory, one environment.

Every command is non-interactive (``-input=false``, ``-auto-approve``); the progress of init, apply and
destroy goes to this process's output as Terraform prints it, and a failure raises DeployError naming
the command. Variables are given as ``-var`` options, except the API key, which Terraform reads itself
from ``TF_VAR_api_key`` (it never appears on a command line).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clientml_deploy.errors import DeployError

# `plan -detailed-exitcode`: 0 no changes, 2 changes; anything else is an error.
_PLAN_CHANGES = 2


@dataclass(frozen=True)
class Terraform:
    """``terraform -chdir=<directory>`` with ``environment`` as the process environment."""

    directory: Path
    environment: Mapping[str, str]
    plugin_dir: Path | None = None
    var_file: Path | None = None

    def __post_init__(self) -> None:
        if shutil.which("terraform", path=self.environment.get("PATH")) is None:
            raise DeployError("terraform is not on PATH: install Terraform >= 1.11 (developer.hashicorp.com/terraform)")
        if not (self.directory / "versions.tf").is_file():
            raise DeployError(f"{self.directory}: not the deployment's Terraform configuration (TF_DIR)")
        if self.var_file is not None and not self.var_file.is_file():
            raise DeployError(f"{self.var_file}: no such .tfvars file (TFVARS_FILE)")

    def init(self, backend: Mapping[str, str]) -> None:
        """``init`` with the S3 backend's settings (``-reconfigure``: one directory serves every environment)."""
        args = ["init", "-input=false", "-reconfigure", *(f"-backend-config={k}={v}" for k, v in backend.items())]
        if self.plugin_dir is not None:
            args.append(f"-plugin-dir={self.plugin_dir}")
        self._run(args)

    def apply(self, variables: Mapping[str, str], targets: Sequence[str] = ()) -> None:
        """``apply -auto-approve`` (only ``targets`` and what they depend on, when given)."""
        self._run(["apply", "-auto-approve", "-input=false", *self._variables(variables), *_targets(targets)])

    def has_changes(self, variables: Mapping[str, str]) -> bool:
        """Whether a ``plan`` finds anything to change (``-detailed-exitcode``)."""
        code = self._run(["plan", "-detailed-exitcode", "-input=false", *self._variables(variables)], ok=(0, 2))
        return code == _PLAN_CHANGES

    def destroy(self, variables: Mapping[str, str]) -> None:
        self._run(["destroy", "-auto-approve", "-input=false", *self._variables(variables)])

    def outputs(self) -> dict[str, Any]:
        """The root module's outputs by name (their values)."""
        result = subprocess.run(
            self._command(["output", "-json"]), env=dict(self.environment), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise DeployError(f"terraform output failed (exit {result.returncode}): {result.stderr.strip()}")
        return {name: output["value"] for name, output in json.loads(result.stdout).items()}

    def _variables(self, variables: Mapping[str, str]) -> list[str]:
        files = [f"-var-file={self.var_file}"] if self.var_file is not None else []
        return [*files, *(f"-var={name}={value}" for name, value in variables.items())]

    def _command(self, args: list[str]) -> list[str]:
        color = [] if sys.stdout.isatty() else ["-no-color"]
        return ["terraform", f"-chdir={self.directory}", args[0], *color, *args[1:]]

    def _run(self, args: list[str], ok: tuple[int, ...] = (0,)) -> int:
        code = subprocess.run(self._command(args), env=dict(self.environment), check=False).returncode
        if code not in ok:
            raise DeployError(f"terraform {args[0]} failed (exit {code}): its output is above")
        return code


def backend_config(bucket: str, key: str, region: str) -> dict[str, str]:
    """The S3 backend's settings for ``init`` (README "Remote state"): S3-native locking, encrypted state."""
    return {"bucket": bucket, "key": key, "region": region, "use_lockfile": "true", "encrypt": "true"}


def _targets(targets: Sequence[str]) -> list[str]:
    return [f"-target={target}" for target in targets]
