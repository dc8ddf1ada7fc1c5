"""The `photoseek` entry point: the indexer's commands plus those of searchd and generation.

It lives here because dependencies point one way (web -> searchd -> indexer): the indexer's CLI
cannot import searchd, so the top of the tree assembles the whole command set.
"""

from __future__ import annotations

from indexer.cli import cli

# Imported when run (indexer/cli.py LazyGroup): a query or an index run never loads them.
COMMANDS = {
    "serve": "searchd.serve:serve",
    "token": "searchd.tokens:token",
    "watch": "indexer.watch.cli:watch",
    "status": "indexer.watch.cli:status",
    "classify": "indexer.tags.cli:classify",
    "tags": "indexer.tags.cli:tags",
    "generate": "generation.cli:generate",
    "fetch-vqgan": "generation.cli:fetch_vqgan_command",
}


def build_cli():
    """Attach every feature's commands to the indexer's group (idempotent)."""
    for name, target in COMMANDS.items():
        cli.add_lazy(name, target)
    return cli


def main() -> None:
    build_cli()(prog_name="photoseek")


if __name__ == "__main__":
    main()
