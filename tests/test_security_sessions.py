"""Sessions, tokens and wrong-token backoff (issue 12, point 3), over a real socket.

The login cookie is a session id, never the token; logout ends the session on the server; sessions
survive a restart but not a new token; weak tokens are refused where a token is required, and
`photoseek token` makes strong ones; repeated wrong tokens are slowed down, per client, in bounded
memory.
"""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from searchd.backoff import Backoff
from searchd.sessions import SessionStore
from searchd.tokens import WeakToken, weakness
from tests.conftest import make_settings
from tests.searchd_support import serve_app
from tests.watch_support import wait_for

TOKEN = "Tk-c0rrect-h0rse-battery-5taple"
OTHER_TOKEN = "another-Strong-t0ken-entirely"


def serve(tmp_path, toy_encoder, token: str = TOKEN):
    """A token-protected server over a data dir of its own (sessions.json lives there)."""
    served = serve_app(make_settings(tmp_path), None, toy_encoder, token=token)
    served.token = ""  # no bearer token: these requests are a browser's
    return served


def stop(served) -> None:
    served.close()
    served.state.library.close()


def log_in(served, token: str = TOKEN) -> str:
    reply = served.post_json("/api/login", {"token": token})
    assert reply.status == 200, reply.body
    return reply.headers["set-cookie"].split(";")[0]  # "photoseek_session=..."


def test_logout_ends_the_session_on_the_server(tmp_path, toy_encoder):
    served = serve(tmp_path, toy_encoder)
    try:
        cookie = log_in(served)
        assert cookie.startswith("photoseek_session=") and TOKEN not in cookie
        assert served.get("/api/facets", headers={"Cookie": cookie}).status == 200
        other = log_in(served)  # a second browser
        assert other != cookie
        out = served.request("POST", "/api/logout", headers={"Cookie": cookie})
        assert out.status == 200 and out.json() == {"ok": True, "ended": True}
        cleared = out.headers["set-cookie"]
        assert cleared.startswith("photoseek_session=;") and "Max-Age=0" in cleared
        # A copy of the old cookie (kept by an attacker, or a browser that ignored the reset) is dead.
        assert served.get("/api/facets", headers={"Cookie": cookie}).status == 401
        assert served.get("/api/facets", headers={"Cookie": other}).status == 200
        again = served.request("POST", "/api/logout", headers={"Cookie": cookie})
        assert again.json()["ended"] is False
    finally:
        stop(served)


def test_sessions_survive_a_restart_but_not_a_new_token(tmp_path, toy_encoder):
    served = serve(tmp_path, toy_encoder)
    try:
        cookie = log_in(served)
    finally:
        stop(served)
    path = tmp_path / "sessions.json"
    stored = path.read_text()
    assert cookie.split("=", 1)[1] not in stored and TOKEN not in stored  # HMACs only
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    served = serve(tmp_path, toy_encoder)
    try:
        assert served.get("/api/facets", headers={"Cookie": cookie}).status == 200
    finally:
        stop(served)
    served = serve(tmp_path, toy_encoder, token=OTHER_TOKEN)  # the token changed: log in again
    try:
        assert served.get("/api/facets", headers={"Cookie": cookie}).status == 401
    finally:
        stop(served)


def test_the_session_store_is_bounded_and_sessions_expire(tmp_path):
    store = SessionStore(TOKEN, tmp_path / "sessions.json", max_sessions=3)
    ids = [store.open() for _ in range(5)]
    assert len(store) == 3
    assert [store.valid(i) for i in ids] == [False, False, True, True, True]  # the oldest went first
    reloaded = SessionStore(TOKEN, tmp_path / "sessions.json", max_sessions=3)
    assert [reloaded.valid(i) for i in ids] == [False, False, True, True, True]
    assert not reloaded.valid("") and not reloaded.valid("x" * 10_000)
    expired = SessionStore(TOKEN, None, lifetime_s=0)
    assert not expired.valid(expired.open()) and len(expired) == 0


def test_an_unreadable_sessions_file_only_logs_everyone_out(tmp_path, toy_encoder, caplog):
    (tmp_path / "sessions.json").write_text("{not json")
    served = serve(tmp_path, toy_encoder)
    try:
        assert "unreadable" in caplog.text
        cookie = log_in(served)
        assert served.get("/api/facets", headers={"Cookie": cookie}).status == 200
    finally:
        stop(served)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("x", "1 characters"),
        (" ", "spaces"),
        ("\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", "control"),
        ("s3cret", "6 characters"),
        ("correct horse battery staple", "spaces"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "different characters"),
        ("abcabcabcabcabcabcabcabc", "different characters"),
        ("pässwörd-with-umlauts-long-enough", "non-ASCII"),
    ],
)
def test_weak_tokens_are_refused_where_a_token_is_required(tmp_path, toy_encoder, token, why):
    assert why in weakness(token)
    with pytest.raises(WeakToken, match="photoseek token"):
        serve_app(make_settings(tmp_path), None, toy_encoder, token=token)


def test_serve_refuses_a_weak_token_before_loading_anything(tmp_path, monkeypatch):
    from searchd.cli import build_cli

    monkeypatch.setenv("PHOTOSEEK_AUTH_TOKEN", "hunter2")
    result = CliRunner().invoke(build_cli(), ["--data-dir", str(tmp_path), "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2, result.output
    assert "too weak" in result.output and "photoseek token" in result.output
    assert not (tmp_path / "catalog.sqlite").exists()  # refused before the library was opened


def test_the_token_command_makes_strong_tokens():
    from searchd.cli import build_cli

    made = [CliRunner().invoke(build_cli(), ["token"]) for _ in range(2)]
    tokens = [m.stdout.strip() for m in made]
    assert all(m.exit_code == 0 for m in made)
    assert tokens[0] != tokens[1] and all(len(t) == 43 and weakness(t) is None for t in tokens)
    assert "auth_token" in made[0].stderr


def test_wrong_tokens_are_slowed_down(tmp_path, toy_encoder):
    served = serve(tmp_path, toy_encoder)
    try:
        wrong = {"Authorization": "Bearer wrong-but-long-enough-token"}
        for _ in range(5):
            assert served.get("/api/facets", headers=wrong).status == 401
        slowed = served.get("/api/facets", headers=wrong)
        assert slowed.status == 429 and int(slowed.headers["retry-after"]) >= 1
        assert "try again in" in slowed.error
        # While it must wait, even the right token is not checked: guessing faster gains nothing.
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert served.get("/api/facets", headers=right).status == 429
        assert served.post_json("/api/login", {"token": TOKEN}).status == 429
        # Once the wait is over, the right token gets in and clears the record.
        wait_for(lambda: served.get("/api/facets", headers=right).status == 200, 30, "the backoff to end")
        assert served.get("/api/facets", headers=wrong).status == 401
    finally:
        stop(served)


def test_a_session_keeps_working_while_its_address_is_slowed_down(tmp_path, toy_encoder):
    served = serve(tmp_path, toy_encoder)
    try:
        cookie = log_in(served)
        for _ in range(7):
            served.get("/api/facets", headers={"Authorization": "Bearer guess-guess-guess-guess"})
        assert served.get("/api/facets", headers={"Authorization": f"Bearer {TOKEN}"}).status == 429
        assert served.get("/api/facets", headers={"Cookie": cookie}).status == 200
    finally:
        stop(served)


def test_the_backoff_remembers_a_bounded_number_of_clients():
    backoff = Backoff(max_clients=100)
    for i in range(5000):
        backoff.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(backoff) == 100
    for _ in range(6):
        backoff.failed("192.0.2.1")
    assert backoff.wait_s("192.0.2.1") > 0 and len(backoff) == 100
    assert backoff.wait_s("10.0.0.0") == 0  # forgotten: the least recently failed went first
    backoff.succeeded("192.0.2.1")
    assert backoff.wait_s("192.0.2.1") == 0


def test_backoff_delays_double_and_are_capped():
    delays = [Backoff().delay_s(n) for n in range(1, 16)]
    assert delays[:4] == [0, 0, 0, 0] and delays[4:9] == [1, 2, 4, 8, 16] and max(delays) == 60
