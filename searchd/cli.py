"""The `photoseek` entry point: the indexer's commands plus those of searchd and generation.

It lives here because dependencies point one way (web -> searchd -> indexer): the indexer's CLI
cannot import searchd, so the top of the tree assembles the whole command set.
"""

from __future__ import annotations

from generation.cli import fetch_vqgan_command, generate
from indexer.cli import cli
from indexer.tags.cli import classify, tags
from indexer.watch.cli import status, watch
from searchd.serve import serve
from searchd.tokens import token


def build_cli():
    """Attach every feature's commands to the indexer's group (idempotent)."""
    commands: list = [serve, token, watch, status, classify, tags, generate, fetch_vqgan_command]
    for command in commands:
        cli.add_command(command)
    return cli


def main() -> None:
    build_cli()(prog_name="photoseek")


if __name__ == "__main__":
    main()
