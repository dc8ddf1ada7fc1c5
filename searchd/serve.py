"""`photoseek serve`: the app under waitress, on loopback unless a token protects it."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from typing import TYPE_CHECKING

import click

from indexer import remote
from indexer.cli import UserError, friendly_errors, open_library
from indexer.settings import Settings

if TYPE_CHECKING:  # the CLI is built for every command: Flask and waitress load only to serve
    from flask import Flask

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def check_bind(host: str, token: str) -> None:
    """Refuse to listen beyond this machine without a token: the API hands out every photo."""
    if not is_loopback(host) and not token:
        raise UserError(
            f"refusing to listen on {host or 'every interface'} without authentication: anyone who can "
            "reach it could browse and download every photo. Set a token (auth_token in photoseek.toml "
            "or PHOTOSEEK_AUTH_TOKEN), or keep the default --host 127.0.0.1"
        )
    if token:
        from searchd.tokens import check_strength

        check_strength(token)  # a weak token is refused wherever one guards the photos (WeakToken: exit 2)


def create_server(app: Flask, settings: Settings, host: str, port: int, threads: int = DEFAULT_THREADS):
    """A waitress server for `app` (not yet running: call .run()); checks the bind first."""
    from searchd.auth import configured_token

    check_bind(host, configured_token(settings))
    # waitress buffers whole request bodies before the app sees them; allow some room above
    # max_upload_mb so Flask answers an oversized upload with its JSON 413, but bound the buffering.
    body_limit = int(settings.max_upload_mb * 4 * 1024 * 1024) + (1 << 20)
    import waitress

    return waitress.create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=body_limit,
        ident="photoseek",
        clear_untrusted_proxy_headers=False,  # searchd/proxies.py decides whose X-Forwarded-* to believe
    )


@click.command("serve")
@click.option("--host", help="Address to listen on [127.0.0.1]; anything else needs a token.")
@click.option("--port", type=int, help="Port [8765].")
@click.option("--threads", type=int, default=DEFAULT_THREADS, show_default=True, help="Request threads.")
@click.pass_obj
@friendly_errors
def serve(settings: Settings, host: str | None, port: int | None, threads: int) -> None:
    """Serve the search page and its API (waitress)."""
    from searchd.app import create_app
    from searchd.auth import configured_token
    from searchd.following import Follower

    settings = settings.replace(host=host, port=port)
    check_bind(settings.host, configured_token(settings))  # before anything slow
    library = open_library(settings)
    try:
        app = create_app(library)
        server = create_server(app, library.settings, settings.host, settings.port, threads)
        follower = Follower(library).start()
        # The model loads while the server already answers (the page, thumbnails, browsing); the first
        # query waits for it only if it comes sooner.
        threading.Thread(target=_load_model, args=(library,), name="model-load", daemon=True).start()
        url = f"http://{settings.host}:{server.effective_port}/"
        click.echo(f"photoseek: serving {settings.data_dir} at {url} ({threads} threads; Ctrl-C stops)")
        # `photoseek search` on this machine asks this server instead of starting up (indexer/remote.py).
        remote.write_serve_info(library.layout.serve_info, local_url(settings.host, server.effective_port))
        signal.signal(signal.SIGTERM, _stop)  # systemd's stop: as Ctrl-C, so the finally below runs
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            remote.remove_serve_info(library.layout.serve_info)
            follower.stop()
            server.close()
            runner = app.extensions.get("photoseek.jobs")  # generation: a running job goes back in the queue
            if runner is not None:
                runner.close()
    finally:
        library.close()


def _stop(*_) -> None:
    raise KeyboardInterrupt


def local_url(host: str, port: int) -> str:
    """How a client on this machine reaches a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _load_model(library) -> None:
    """What the first text query needs, loaded while the server already answers: the text tower (with
    ONNX Runtime the towers load separately; the image tower waits for the first upload)."""
    try:
        library.encoder().encode_texts(["a photo"])
    except Exception as exc:  # said once here; each query that needs the model says it again (503)
        log.error("the model could not be loaded: %s", exc)
