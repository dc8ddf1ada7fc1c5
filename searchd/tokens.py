"""Access tokens: what a strong one is, and `photoseek token`, which makes one.

The token guards one person's whole photo library, so a server that needs one refuses a weak one at
start-up rather than serving behind it. Strong means: at least MIN_LENGTH characters, printable ASCII
without spaces (it travels in an HTTP header), and at least MIN_DISTINCT different characters. That
refuses "s3cret", "x", whitespace and "aaaaaaaaaaaaaaaaaaaaaaaa"; it cannot see whether a person chose
the token well, which is why `photoseek token` exists: 32 random bytes, 43 URL-safe characters, 256 bits.
"""

from __future__ import annotations

import secrets

import click

from indexer.errors import BadInput

MIN_LENGTH = 20
MIN_DISTINCT = 10
TOKEN_BYTES = 32


class WeakToken(BadInput):
    """The configured access token is too easy to guess."""


def weakness(token: str) -> str | None:
    """Why `token` is too weak (a phrase), or None when it is strong enough."""
    if any(not ("!" <= c <= "~") for c in token):
        return "it holds spaces, control or non-ASCII characters"
    if len(token) < MIN_LENGTH:
        return f"it has {len(token)} characters; at least {MIN_LENGTH} are needed"
    if len(set(token)) < MIN_DISTINCT:
        return f"it uses only {len(set(token))} different characters; at least {MIN_DISTINCT} are needed"
    return None


def check_strength(token: str) -> None:
    """Raise WeakToken, saying why and what to do, unless `token` is strong."""
    why = weakness(token)
    if why is not None:
        raise WeakToken(
            f"the access token (auth_token or PHOTOSEEK_AUTH_TOKEN) is too weak: {why}. Make a strong "
            "one with `photoseek token` and set it as auth_token in photoseek.toml"
        )


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@click.command("token")
def token() -> None:
    """Print a new strong access token (for auth_token or PHOTOSEEK_AUTH_TOKEN)."""
    made = new_token()
    click.echo(made)
    click.echo(
        f'put it in DATA_DIR/photoseek.toml as auth_token = "{made}" (or export PHOTOSEEK_AUTH_TOKEN), '
        "then restart `photoseek serve`; give it to the people who may see the photos",
        err=True,
    )
