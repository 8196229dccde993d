"""The one error the deploy commands report: what failed or is missing, and what to do about it."""

from __future__ import annotations


class DeployError(Exception):
    """A deploy, rollback or destroy cannot go on; the message names the missing tool, variable,
    credential or the failed step (printed as ``error: <message>``, exit status 2)."""
