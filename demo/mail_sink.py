"""A local mail server for the demo: accepts every message on loopback and files it as .eml.

Usage: python demo/mail_sink.py PORT DIRECTORY. It runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Filing:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            name = self.directory / f"{self.count:03d}.eml"
        temporary = name.with_suffix(".tmp")
        temporary.write_bytes(envelope.content)
        temporary.rename(name)
        return "250 OK"


def main() -> None:
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(Filing(directory), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
