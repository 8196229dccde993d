"""The errors a user sees: a source file that cannot be loaded at all, a warehouse that cannot be used."""

from __future__ import annotations


class SourceError(Exception):
    """A source file cannot be loaded at all (missing, not UTF-8, not CSV, a header or column problem).

    The message starts with the file as the user named it and says what is wrong and where (line, byte
    offset, column), in the user's terms: never an engine's internal message.
    """


class WarehouseError(Exception):
    """The warehouse URL is wrong, the warehouse cannot be reached, or its file stayed locked too long."""
