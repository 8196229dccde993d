"""clientml de module."""
