"""clientml ds module."""
