"""The error of a source file that cannot be loaded at all; every check of a file raises it."""

from __future__ import annotations


class SourceError(Exception):
    """A source file cannot be loaded at all (missing, not UTF-8, not CSV, a header or column problem).

    The message starts with the file as the user named it and says what is wrong and where (line, byte
    offset, column), in the user's terms: never an engine's internal message.
    """
