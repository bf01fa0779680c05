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
    max_upload_bytes: int = 0
    """Largest file body uploaded as a stream (PUT /api/v1/content); 0: the policy's
    max_bytes_written, the most a plan may write anyway."""
    apply_workers: int = 8
    """Applies and rollbacks running at once (one per scope at a time)."""
    log_level: str = "info"
    allowed_hosts: tuple[str, ...] = ()
    """Host header values answered besides the defaults (the bind address, localhost, 127.0.0.1
    and [::1], each with the port): the names people and proxies use, e.g. "airlock.firm.example".
    A name without a port matches any port. Any other Host gets 400 (DNS rebinding)."""
    session_hours: float = 12.0
    """How long a sign-in to the review page lasts (sign-out and revoking the token end it sooner)."""
    docs: bool = False
    """Serve Swagger UI at /docs (it loads pinned, integrity-checked files from a CDN)."""

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
            if name in ("port", "max_body_bytes", "max_upload_bytes", "apply_workers"):
                converted[name] = int(str(value))
            elif name == "session_hours":
                converted[name] = _positive(float(str(value)), name)
            elif name == "workspace":
                converted[name] = Path(str(value))
            elif name == "allowed_hosts":
                converted[name] = _host_list(value)
            elif name == "docs":
                converted[name] = _flag(value, name)
            else:
                converted[name] = str(value)
        except ValueError:
            raise InputError(f"configuration {name} = {value!r} is not a number") from None
    return Settings(**converted)  # type: ignore[arg-type]


def _positive(value: float, name: str) -> float:
    if not 0 < value <= 24 * 366:
        raise InputError(
            f"configuration {name} = {value!r} is out of range",
            hint="give a number of hours above 0 and at most a year (8784)",
        )
    return value


def _host_list(value: object) -> tuple[str, ...]:
    """A TOML list of names, or (from the environment) names separated by commas or spaces."""
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    return tuple(str(item).strip() for item in items if str(item).strip())


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"configuration {name} = {value!r} is not true or false")
