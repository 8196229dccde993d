"""Every command of README.md is run by ``make docs-check`` or by a named test (tools/docs_check).

Fast (it reads files, runs nothing), so it is in ``make test``: a command added to the README without a run
fails here, naming it.
"""

from __future__ import annotations

import docs_check


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
