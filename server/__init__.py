"""The Evidence Vault server (stores ciphertext, keeps the audit log)."""

from __future__ import annotations

from server.app import create_app
from server.config import Config

__all__ = ["Config", "create_app"]
