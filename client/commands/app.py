"""``evault app``: open the reporter's and editor's app in the default browser."""

from __future__ import annotations

import signal
import threading
import webbrowser

import click

from client.app import IDLE_LOCK, create_app, serve, start
from client.app._guard import Door
from client.config import home
from client.ui import err, handle_errors
from vault import keystore

__all__ = ["app"]


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 [free].")
@click.option("--no-browser", is_flag=True, help="Print the link instead of opening a browser.")
@click.option(
    "--lock-after",
    type=click.IntRange(1, 24 * 60),
    default=IDLE_LOCK // 60,
    help="Minutes without use after which the app locks itself [10].",
)
@click.option("--insecure-fast-kdf", is_flag=True, hidden=True)
@handle_errors
def app(port: int, no_browser: bool, lock_after: int, insecure_fast_kdf: bool) -> None:
    """Open Evidence Vault in your browser: add files, share, check in, without a terminal.

    The app runs on this computer only. Close it with Ctrl-C here; it locks
    itself when left alone.
    """
    kdf = keystore.Argon2Params.TESTING if insecure_fast_kdf else keystore.Argon2Params.DEFAULT
    door = Door(origin="http://127.0.0.1:0")
    server = serve(create_app(home(), door, idle=lock_after * 60, kdf=kdf), port)
    # Known once the port is: the address every request must name.
    door.origin = f"http://127.0.0.1:{server.port}"
    start(server)
    url = door.launch_url()
    console = err()
    console.print(
        "Evidence Vault is open in your browser. If it did not open, paste this link into it "
        f"(it works once):\n  {url}\nPress Ctrl-C here to close the app."
    )
    if not no_browser:
        webbrowser.open(url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    console.print("Evidence Vault closed.")
