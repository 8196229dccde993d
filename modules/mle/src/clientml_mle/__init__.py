"""clientml mle module."""
