"""clientml: command-line entry point of the client classification system."""
