"""Answer only to the host names the server is meant to have (defence against DNS rebinding).

A web page can rebind its own host name to 127.0.0.1 (or to the NAS's address): the browser then
sends that page's requests to searchd as same-origin requests, with `Host: evil.example`. So every
request's Host is checked before any route runs, as Django's ALLOWED_HOSTS and Jupyter do:

- loopback names and addresses (localhost, 127.0.0.0/8, ::1) are always allowed;
- the bind address (`host` setting) is allowed; bound to every interface (0.0.0.0, ::) any IP literal
  is, since an IP literal cannot be rebound: a page can only send it from that address's own origin;
- the `allowed_hosts` setting adds names: `photos.example` exactly, `.example.org` for the domain and
  its subdomains, `*` for any host (only behind a proxy that checks Host itself).
"""

from __future__ import annotations

import ipaddress
import logging
import re

from flask import Flask, request

from indexer.settings import Settings
from searchd.errors import error_response

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost"}
WILDCARD_BINDS = {"", "0.0.0.0", "::", "[::]"}
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?$")  # a DNS name, lower case


def hostname(host_header: str) -> str | None:
    """The lower-case name or address of a Host header (port dropped), or None when it is malformed."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        rest = host[end + 1 :]
        if end < 0 or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        try:
            return str(ipaddress.IPv6Address(host[1:end]))
        except ValueError:
            return None
    name, _, port = host.partition(":")
    if port and not re.fullmatch(r"\d{1,5}", port):
        return None
    name = name.rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    return name if _NAME.match(name) else None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class AllowedHosts:
    def __init__(self, bind: str, allowed: tuple[str, ...] | list[str]) -> None:
        entries = [e.strip().lower().rstrip(".") for item in allowed for e in item.split(",")]
        self.any = "*" in entries
        self.names = {e for e in entries if e and not e.startswith(".") and e != "*"}
        self.suffixes = tuple(e for e in entries if e.startswith(".") and len(e) > 1)
        bind_name = bind.strip().lower()
        self.any_ip = bind_name in WILDCARD_BINDS
        if not self.any_ip:
            self.names.add(hostname(bind_name) or bind_name)

    def allows(self, name: str | None) -> bool:
        if name is None:
            return False
        if self.any or name in LOOPBACK_NAMES or name in self.names:
            return True
        ip = _ip(name)
        if ip is not None:
            return ip.is_loopback or self.any_ip
        return any(name.endswith(s) or name == s[1:] for s in self.suffixes)


def init_app(app: Flask, settings: Settings) -> None:
    hosts = AllowedHosts(settings.host, settings.allowed_hosts)
    app.extensions["photoseek.hosts"] = hosts

    @app.before_request
    def check_host():
        if hosts.allows(hostname(request.host)):
            return None
        given = request.headers.get("Host", "")[:100]
        message = (
            f"this photoseek server does not answer to the host name {given!r}: add it to "
            "the allowed_hosts setting if it is really this server's name (docs/security.md)"
        )
        log.info("400 %s %s: %s", request.method, request.path, message)
        return error_response(400, message)
