"""Requests through a reverse proxy: believe X-Forwarded-For/-Proto only from proxies named in settings.

Behind a TLS proxy searchd sees plain http from the proxy's address. The proxy says what it saw in
X-Forwarded-Proto (https: the login cookie is then Secure, and the page's Origin is https://...) and
X-Forwarded-For (the client's address, which the wrong-token backoff counts by). Anyone can send those
headers, so they are read only when the request comes from an address in the `trusted_proxies`
setting (addresses or networks: 127.0.0.1, 10.0.0.0/8); from anyone else they are removed.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask

from indexer.settings import Settings

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_KEYS = (
    "HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_BY", "HTTP_X_REAL_IP",
)  # fmt: skip


def parse_networks(entries: tuple[str, ...] | list[str]) -> list[Network]:
    """Addresses and CIDR networks, separated by commas or given as a list; ValueError names a bad one."""
    out: list[Network] = []
    for item in entries:
        for raw in item.split(","):
            raw = raw.strip()
            if not raw:
                continue
            try:
                out.append(ipaddress.ip_network(raw, strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {raw!r} is not an IP address or network such as 127.0.0.1 or "
                    "10.0.0.0/8"
                ) from None
    return out


class TrustedProxies:
    """WSGI middleware: from a trusted proxy, the forwarded client address and scheme replace its own."""

    def __init__(self, wsgi_app, networks: list[Network]) -> None:
        self.wsgi_app = wsgi_app
        self.networks = networks

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def __call__(self, environ, start_response):
        if not self.trusts(environ.get("REMOTE_ADDR", "")):
            for key in FORWARDED_KEYS:  # nothing further down may believe them either
                environ.pop(key, None)
        else:
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            # The nearest untrusted address in the chain is the client (the others could be forged).
            chain = [a.strip() for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
            for address in reversed(chain):
                if not self.trusts(address):
                    environ["photoseek.proxy"] = environ.get("REMOTE_ADDR")
                    environ["REMOTE_ADDR"] = address[:64]
                    break
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask, settings: Settings) -> None:
    """Wrap the app. The WSGI server must pass the headers on (waitress: clear_untrusted_proxy_headers
    False, as searchd/serve.py sets it): this middleware, not the server, decides whom to believe."""
    networks = parse_networks(settings.trusted_proxies)
    app.wsgi_app = TrustedProxies(app.wsgi_app, networks)  # type: ignore[method-assign]
