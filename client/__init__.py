"""The ``evault`` command-line client for reporters and editors."""
