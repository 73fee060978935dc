"""The Evidence Vault server (stores ciphertext, keeps the audit log)."""
