"""Evidence Vault core: formats and cryptography shared by the client and the server.

Pure Python with no HTTP and no printing; see ``vault.age`` for the item format.
"""

from __future__ import annotations

__version__ = "0.1.0"
