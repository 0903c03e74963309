"""Settings: defaults < TOML config file < OCCIPY_* environment < command-line flags.

Driver options are strings collected from `[drivers.<name>]` in the config file,
`OCCIPY_<DRIVER>_<KEY>` environment variables and `--driver-opt key=value` flags.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    driver: str = "simulated"
    driver_options: Mapping[str, str] = field(default_factory=dict)
    database_url: str | None = None  # default: sqlite:///<data_dir>/occipy.db
    sqlite_synchronous: str = "NORMAL"
    sync_wait: float = 0.2
    max_page: int = 1000
    max_body: int = 1 << 20
    max_headers: int = 100
    allow_delete_root: bool = False
    reconcile_interval: float = 30.0
    log_level: str = "info"
    # Prometheus metrics at /metrics and the per-request counters (docs/metrics.md).
    metrics: bool = True

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'occipy.db').resolve()}"


_TYPES = {f.name: f.type for f in fields(Settings)}


def _convert(name: str, value: Any) -> Any:
    kind = _TYPES[name]
    try:
        if kind in ("int", int):
            return int(value)
        if kind in ("float", float):
            return float(value)
        if kind in ("bool", bool):
            if isinstance(value, bool):
                return value
            return str(value).lower() in ("1", "true", "yes", "on")
        if kind in ("Path", Path):
            return Path(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: {value!r} is not a valid {kind}") from None
    return value


def load(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    driver_opts: Sequence[str] = (),
) -> Settings:
    """Merge every source into Settings (later sources win)."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    driver_tables: dict[str, dict[str, str]] = {}
    path = config_file or env.get("OCCIPY_CONFIG")
    if path:
        try:
            document = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read the config file {path}: {error}") from None
        for key, value in document.items():
            if key == "drivers" and isinstance(value, dict):
                driver_tables = {name: {k: str(v) for k, v in table.items()} for name, table in value.items()}
            elif key in _TYPES and key != "driver_options":
                values[key] = _convert(key, value)
            else:
                raise ConfigError(f"unknown setting {key!r} in {path}")
    for name in _TYPES:
        if name == "driver_options":
            continue
        raw = env.get(f"OCCIPY_{name.upper()}")
        if raw not in (None, ""):
            values[name] = _convert(name, raw)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _convert(name, value)
    settings = replace(Settings(), **values)
    options: dict[str, str] = dict(driver_tables.get(settings.driver, {}))
    prefix = f"OCCIPY_{settings.driver.upper()}_"
    for key, value in env.items():
        if key.startswith(prefix):
            options[key[len(prefix):].lower()] = value
    for item in driver_opts:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--driver-opt needs key=value, got {item!r}")
        options[key.strip()] = value
    return replace(settings, driver_options=options)
