"""A real searchd over a loopback socket for the API tests: waitress in a thread, http.client to talk.

Not a test module: tests/test_searchd*.py and tests/test_security.py import from here.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        assert self.headers.get("content-type", "").startswith("application/json"), (
            self.status,
            self.headers,
        )
        return json.loads(self.body)

    @property
    def error(self) -> str:
        return self.json()["error"]


# What the page (web/api.js) sends with every request, and a script must send with every POST:
# searchd refuses state-changing requests without it (searchd/origins.py).
CLIENT_HEADERS = {"X-Photoseek": "1"}


@dataclass
class Served:
    """An app served by waitress on 127.0.0.1:<free port>, until close()."""

    app: Flask
    token: str = ""
    headers: dict[str, str | None] = field(default_factory=lambda: dict(CLIENT_HEADERS))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __post_init__(self) -> None:
        # As serve.py: waitress passes X-Forwarded-* on, searchd/proxies.py decides whom to believe.
        self.server = waitress.create_server(
            self.app, host="127.0.0.1", port=0, threads=4, clear_untrusted_proxy_headers=False
        )
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)
        self.thread.start()

    @property
    def state(self):
        return self.app.extensions["photoseek"]

    def close(self) -> None:
        # Let workers finish: one that is still wrapping up a request pulls the trigger afterwards,
        # which fails (EBADF) once the trigger is closed.
        dispatcher = self.server.task_dispatcher
        deadline = time.monotonic() + 5
        while (dispatcher.active_count or dispatcher.queue) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Closed from inside the loop's own thread (a trigger thunk): closing the sockets from here
        # could race with the loop's poll(). Every channel goes, not just the listening socket: a
        # browser keeps connections alive, and the loop runs until no channel is left.
        # A channel's handle_close also closes its output buffers, among them a file being sent (a
        # thumbnail): close_all alone closes only the socket and leaves the file to the GC.
        def close_all() -> None:
            for channel in list(self.server._map.values()):
                if isinstance(channel, HTTPChannel):
                    channel.handle_close()
            wasyncore.close_all(self.server._map)

        try:
            self.server.trigger.pull_trigger(close_all)
        except OSError:  # the trigger is gone already (the loop closed it): close what is left
            close_all()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "waitress did not stop"
        self.server.task_dispatcher.shutdown()
        close_features(self.app)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            h = {"Connection": "close", **self.headers, **(headers or {})}
            if self.token:
                h.setdefault("Authorization", f"Bearer {self.token}")
            # A header given as None is left out (a test of what happens without it).
            conn.request(method, path, body=body, headers={k: v for k, v in h.items() if v is not None})
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, params: dict | list | None = None, **kw) -> Reply:
        if params:
            path += "?" + urlencode(params, doseq=True)
        return self.request("GET", path, **kw)

    def search(self, **params) -> dict:
        reply = self.get("/api/search", params)
        assert reply.status == 200, (reply.status, reply.body[:300])
        return reply.json()

    def post_json(self, path: str, doc, **kw) -> Reply:
        raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return self.request("POST", path, raw, {"Content-Type": "application/json", **kw.get("headers", {})})

    def post_image(self, path: str, data: bytes, filename: str, fields: dict | None = None) -> Reply:
        body, ctype = multipart({"image": (filename, data)}, fields or {})
        return self.request("POST", path, body, {"Content-Type": ctype})


def close_features(app: Flask) -> None:
    """Stop the worker threads other features started in create_app (generation's job runner)."""
    runner = app.extensions.get("photoseek.jobs")
    if runner is not None:
        runner.close()


def multipart(files: dict[str, tuple[str, bytes]], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, data) in files.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def serve_app(settings, catalog, encoder, token: str | None = "") -> Served:
    """searchd over `catalog` (None: settings' own) with the given encoder already loaded.

    `token`: the server's access token, which requests then carry; None keeps settings.auth_token and
    sends none (a browser that has not logged in yet)."""
    from tests.conftest import library_for

    if token is not None:
        settings = settings.replace(auth_token=token)
    return serve_library(library_for(settings, encoder, catalog), token or "")


def serve_library(library, token: str = "") -> Served:
    """searchd over an open Library (closing the server leaves the library open); requests carry
    `token` when given."""
    from searchd.app import create_app

    return Served(create_app(library), token)


def private_settings(indexed_settings, data_dir: Path):
    """The shared index's settings with a private data dir (thumbnails, vectors) for one server.

    The catalog is passed separately and read only; the vector index is rebuilt from it in memory.
    """
    return indexed_settings.replace(data_dir=data_dir)
