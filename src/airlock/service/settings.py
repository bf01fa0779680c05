"""Service configuration: defaults, then a TOML file, then ``AIRLOCK_*`` environment variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from airlock.errors import InputError


@dataclass(frozen=True)
class Settings:
    workspace: Path = Path("demo-workspace")
    host: str = "127.0.0.1"
    port: int = 8124
    database_url: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body accepted (a plan with inline file contents)."""
    apply_workers: int = 8
    """Applies and rollbacks running at once (one per scope at a time)."""
    log_level: str = "info"

    def with_overrides(self, **values: object) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]


def load_settings(
    config_file: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read ``config_file`` (TOML, keys as in :class:`Settings`), then ``AIRLOCK_<KEY>`` variables."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(
                f"cannot read the configuration file {str(config_file)!r}: {exc}",
                hint="fix the file or leave out --config",
            ) from None
        values.update(data)
    known = {f.name: f for f in fields(Settings)}
    for name in known:
        env = environ.get(f"AIRLOCK_{name.upper()}")
        if env is not None:
            values[name] = env
    unknown = set(values) - set(known)
    if unknown:
        raise InputError(
            f"unknown configuration keys: {', '.join(sorted(unknown))}",
            hint=f"known keys: {', '.join(known)}",
        )
    converted: dict[str, object] = {}
    for name, value in values.items():
        try:
            if name in ("port", "max_body_bytes", "apply_workers"):
                converted[name] = int(str(value))
            elif name == "workspace":
                converted[name] = Path(str(value))
            else:
                converted[name] = str(value)
        except ValueError:
            raise InputError(f"configuration {name} = {value!r} is not a number") from None
    return Settings(**converted)  # type: ignore[arg-type]
