"""The ``evault`` commands that work with a server, one module per area."""
