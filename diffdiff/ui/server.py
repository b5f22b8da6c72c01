"""Start the page for a Studio: on the loopback address unless told otherwise (with a warning that says
what that exposes), uploads capped, only the output folder served, Gradio's telemetry off."""

from __future__ import annotations

import os

from .uploads import PAGE_MAX_FILE_SIZE

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str, port: int) -> str | None:
    """The line to print when `host` lets other machines in (None on loopback)."""
    if host in LOOPBACK_HOSTS:
        return None
    return (f"warning: --host {host} lets every machine that can reach this one on port {port} use the page "
            "without a login: run edits on this computer, upload files and download every result in the "
            "output folder. Use it only on a network you trust.")


def launch(studio, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False):
    """Serve `studio`'s page; with `block` False, return at once with the running page (its `local_url`
    is the address; `close()` stops it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from .page import build_page

    page = build_page(studio)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                allowed_paths=[str(studio.output)], max_file_size=PAGE_MAX_FILE_SIZE, show_error=False,
                footer_links=["api"], theme="default")
    return page
