"""Every command of README.md is run by ``make docs-check`` or by a named test (tools/docs_check).

The first three are fast (they read files, run nothing): a command added to the README without a run fails
here, naming it. The last runs docs-check's cheap commands, as ``make docs-check`` does (about a minute here).
"""

from __future__ import annotations

from pathlib import Path

import docs_check
import pytest


def test_every_readme_command_is_run_by_docs_check_or_mapped_to_a_test_that_runs_it() -> None:
    assert docs_check.problems() == []


def test_commands_come_from_shell_fences_only_with_continuations_joined_and_comments_dropped() -> None:
    markdown = "\n".join(
        [
            "```bash",
            "make demo   # a comment",
            "# a whole-line comment",
            "clientml pipeline --clients a.csv \\",
            "    --sales b.csv",
            "```",
            "```text",
            "clientml generate --out DIR [--clients N]",
            "```",
            "Inline `make nothing` is prose.",
        ]
    )
    assert docs_check.readme_commands(markdown) == ["make demo", "clientml pipeline --clients a.csv --sales b.csv"]


def test_an_unmapped_command_is_named() -> None:
    found = docs_check.problems("```bash\nmake something-new\n```\n")
    assert f"'make something-new' is in README.md but {docs_check.NEITHER}" in found


@pytest.mark.slow
@pytest.mark.airflow
def test_the_cheap_readme_commands_run_in_a_throwaway_copy(tmp_path: Path) -> None:
    docs_check.tracked_copy(tmp_path)
    ran = [command for command, _ in docs_check.run_commands(tmp_path)]
    assert ran == list(docs_check.RUN)
    assert (tmp_path / "scores.csv").read_text(encoding="utf-8").startswith("client_id,probability,label")
