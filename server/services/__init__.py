"""The server's services: the audit log and invites, used by the API and the CLI."""
