"""``python -m clientml_deploy deploy | rollback | destroy``: what ``make deploy``, ``make rollback`` and
``make destroy`` run. Every input is an environment variable (:mod:`clientml_deploy.settings`); a missing
one, a missing tool or credential, or a failed step ends the command with ``error: <what>`` and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

import typer
from clientml_deploy import commands
from clientml_deploy.errors import DeployError
from clientml_deploy.history import Release
from clientml_deploy.settings import DeploySettings, load_settings

app = typer.Typer(
    help="The model API on AWS (modules/deployment/README.md); inputs from the environment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _run(command: Callable[[DeploySettings], Release | None]) -> None:
    try:
        release = command(load_settings())
    except DeployError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    if release is not None:
        typer.echo(json.dumps(asdict(release)))


@app.command()
def deploy() -> None:
    """Build and push the image, upload the bundle, terraform apply, smoke-test the URL."""
    _run(commands.deploy)


@app.command()
def rollback() -> None:
    """Apply the previous release (image tag and bundle version) again, then smoke-test the URL."""
    _run(commands.rollback)


@app.command()
def destroy() -> None:
    """Destroy the environment's stack (its Terraform state's resources)."""
    _run(commands.destroy)


if __name__ == "__main__":
    app()
