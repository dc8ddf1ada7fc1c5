"""searchd's defences, wired in one call (docs/security.md is the threat model they answer).

Order matters: Flask runs before_request hooks in the order they are added, and create_app calls
this before auth.init_app, so a request is checked for its host name, then for coming from another
site, then for its size, and only then for its token; no route runs before all of them passed.
"""

from __future__ import annotations

from flask import Flask

from indexer.settings import Settings
from searchd import allow, budgets, hosts, json_provider, logs, origins, proxies


def init_app(app: Flask, settings: Settings) -> None:
    proxies.init_app(app, settings)  # first at the WSGI level: the scheme and client the others see
    hosts.init_app(app, settings)  # DNS rebinding: a 400 before anything else
    origins.init_app(app)  # other sites: a 403
    allow.init_app(app)  # exact Allow headers, OPTIONS
    budgets.init_app(app, settings)  # body sizes, upload pixels and slots
    json_provider.init_app(app)  # JSON bodies that cannot break a route; answers always valid JSON
    logs.install()  # log lines a request cannot forge
