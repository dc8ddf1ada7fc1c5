"""`photoseek serve`: the app under waitress, on loopback unless a token protects it."""

from __future__ import annotations

import ipaddress
import logging

import click
import waitress
from flask import Flask

from indexer.cli import UserError, friendly_errors
from indexer.settings import Settings

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


def create_server(app: Flask, settings: Settings, host: str, port: int, threads: int = DEFAULT_THREADS):
    """A waitress server for `app` (not yet running: call .run()); checks the bind first."""
    from searchd.auth import configured_token

    check_bind(host, configured_token(settings))
    # waitress buffers whole request bodies before the app sees them; allow some room above
    # max_upload_mb so Flask answers an oversized upload with its JSON 413, but bound the buffering.
    body_limit = int(settings.max_upload_mb * 4 * 1024 * 1024) + (1 << 20)
    return waitress.create_server(
        app, host=host, port=port, threads=threads, max_request_body_size=body_limit, ident="photoseek"
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

    settings = settings.replace(host=host, port=port)
    check_bind(settings.host, configured_token(settings))  # before the minutes a model load can take
    app = create_app(settings)
    server = create_server(app, settings, settings.host, settings.port, threads)
    library = app.extensions["photoseek"].library
    library.start_following(1.0)
    url = f"http://{settings.host}:{server.effective_port}/"
    click.echo(f"photoseek: serving {settings.data_dir} at {url} ({threads} threads; Ctrl-C stops)")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        library.stop_following()
        server.close()
        runner = app.extensions.get("photoseek.jobs")  # generation: a running job goes back in the queue
        if runner is not None:
            runner.close()
