"""Service settings: defaults, then a TOML file, then AIRLOCK_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.errors import InputError
from airlock.service.settings import Settings, load_settings


def test_defaults_listen_on_loopback_8124() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8124)


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "airlock.toml"
    config.write_text('workspace = "/srv/ws"\nport = 9000\nmax_body_bytes = 1000\n')
    settings = load_settings(config, environ={"AIRLOCK_PORT": "9100"})
    assert (
        settings.workspace == Path("/srv/ws")
        and settings.port == 9100
        and settings.max_body_bytes == 1000
    )
    assert settings.with_overrides(port=9200, host=None).port == 9200
    assert settings.with_overrides(port=9200, host=None).host == "127.0.0.1"
    assert isinstance(settings, Settings)


def test_bad_configuration_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "airlock.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(InputError, match="unknown configuration keys: prot"):
        load_settings(config, environ={})
    with pytest.raises(InputError, match="not a number"):
        load_settings(None, environ={"AIRLOCK_PORT": "eighty"})
    with pytest.raises(InputError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})
