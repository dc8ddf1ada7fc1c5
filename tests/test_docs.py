"""Docs stay honest: every setting and every CLI command is documented."""

from __future__ import annotations

from pathlib import Path

from indexer.settings import load_settings, setting_names

DOCS = Path(__file__).parent.parent / "docs"
README = Path(__file__).parent.parent / "README.md"


def test_every_setting_is_documented():
    text = (DOCS / "settings.md").read_text()
    missing = [n for n in setting_names() if f"`{n}`" not in text]
    assert not missing, f"document these settings in docs/settings.md: {missing}"


def test_every_command_is_in_the_readme():
    from searchd.cli import build_cli

    text = README.read_text()
    missing = [name for name in build_cli().list_commands(None) if f"photoseek {name}" not in text]
    assert not missing, f"mention these commands in README.md: {missing}"


def test_config_file_and_env_are_read(tmp_path, monkeypatch):
    (tmp_path / "photoseek.toml").write_text('[photoseek]\nbatch_size = 7\nroots = ["/a", "/b"]\n')
    monkeypatch.setenv("PHOTOSEEK_THUMB_SIZE", "128")
    s = load_settings(data_dir=tmp_path, port=9000)
    assert (s.batch_size, s.roots, s.thumb_size, s.port) == (7, ("/a", "/b"), 128, 9000)


def test_unknown_setting_is_refused(tmp_path):
    (tmp_path / "photoseek.toml").write_text("batch_sise = 7\n")
    try:
        load_settings(data_dir=tmp_path)
    except ValueError as exc:
        assert "batch_sise" in str(exc)
    else:
        raise AssertionError("a misspelt setting must not pass silently")
