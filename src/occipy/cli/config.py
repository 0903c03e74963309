"""CLI settings: endpoint, credentials and default output from flags, environment and a config file.

Precedence, highest first: command-line flags, `OCCI_*` environment variables, the selected
profile of the config file, the file's top level. The file is TOML, at `$OCCI_CONFIG`, else
`$XDG_CONFIG_HOME/occi/config.toml`, else `~/.config/occi/config.toml`. Imports only the
standard library and `occipy.errors`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from occipy.errors import BadRequest

__all__ = ["AUTH_METHODS", "ENV_VARS", "OUTPUTS", "Settings", "config_path", "load_settings"]

OUTPUTS: Final = ("table", "json", "occi")
MEDIA_TYPES: Final = ("json", "text", "occi")
# --auth: basic (user, password), token (a Keystone token, X-Auth-Token, as rOCCI-cli sends it),
# oidc (a bearer access token), keystone (user, password -> a token from the server's Keystone),
# x509 (client certificate). Without --auth the credentials given decide (token -> Bearer).
AUTH_METHODS: Final = ("basic", "token", "oidc", "keystone", "x509")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the CLI needs to build a client and print answers."""

    endpoint: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    token_file: str | None = None
    auth: str | None = None
    project: str | None = None
    user_domain: str | None = None
    project_domain: str | None = None
    keystone_url: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    insecure: bool = False
    output: str = "table"
    media_type: str | None = None
    timeout: float = 30.0


ENV_VARS: Final[Mapping[str, str]] = {
    "endpoint": "OCCI_ENDPOINT",
    "username": "OCCI_USERNAME",
    "password": "OCCI_PASSWORD",
    "token": "OCCI_TOKEN",
    "token_file": "OCCI_TOKEN_FILE",
    "auth": "OCCI_AUTH",
    "project": "OCCI_PROJECT",
    "user_domain": "OCCI_USER_DOMAIN",
    "project_domain": "OCCI_PROJECT_DOMAIN",
    "keystone_url": "OCCI_KEYSTONE_URL",
    "cert": "OCCI_CERT",
    "key": "OCCI_KEY",
    "ca": "OCCI_CA",
    "insecure": "OCCI_INSECURE",
    "output": "OCCI_OUTPUT",
    "media_type": "OCCI_MEDIA_TYPE",
    "timeout": "OCCI_TIMEOUT",
}
_NAMES: Final = frozenset(f.name for f in fields(Settings))


def config_path(env: Mapping[str, str]) -> Path:
    """Where the config file is looked for (it need not exist)."""
    if env.get("OCCI_CONFIG"):
        return Path(env["OCCI_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "occi" / "config.toml"


def _coerce(name: str, value: object, origin: str) -> Any:
    """A value from the file or the environment, checked against the field's type."""
    if name == "insecure":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            return value.lower() in ("1", "true", "yes", "on")
        raise BadRequest(f"{origin}: insecure must be true or false, not {value!r}")
    if name == "timeout":
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadRequest(f"{origin}: timeout must be a number of seconds, not {value!r}") from None
        if number <= 0:
            raise BadRequest(f"{origin}: timeout must be positive")
        return number
    if not isinstance(value, str):
        raise BadRequest(f"{origin}: {name} must be a string, not {value!r}")
    if name == "output" and value not in OUTPUTS:
        raise BadRequest(f"{origin}: output must be one of {', '.join(OUTPUTS)}, not {value!r}")
    if name == "auth" and value not in AUTH_METHODS:
        raise BadRequest(f"{origin}: auth must be one of {', '.join(AUTH_METHODS)}, not {value!r}")
    if name == "media_type" and value not in MEDIA_TYPES:
        raise BadRequest(f"{origin}: media_type must be one of {', '.join(MEDIA_TYPES)}, not {value!r}")
    return value


def _from_table(table: Mapping[str, Any], origin: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name == "profiles":
            continue
        key = name.replace("-", "_")
        if key == "user":
            key = "username"
        if key not in _NAMES:
            raise BadRequest(f"{origin}: unknown setting {name!r} (known: {', '.join(sorted(_NAMES))})")
        values[key] = _coerce(key, value, origin)
    return values


def _read_file(path: Path, profile: str | None, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise BadRequest(f"config file {path} does not exist")
        if profile:
            raise BadRequest(f"profile {profile!r} asked for, but there is no config file at {path}")
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadRequest(f"config file {path}: {exc}") from None
    values = _from_table(document, str(path))
    if profile:
        profiles = document.get("profiles", {})
        chosen = profiles.get(profile) if isinstance(profiles, dict) else None
        if not isinstance(chosen, dict):
            known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
            raise BadRequest(f"config file {path}: no profile {profile!r}" + (f" (known: {known})" if known else ""))
        values.update(_from_table(chosen, f"{path} [profiles.{profile}]"))
    return values


def load_settings(
    flags: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    *,
    config_file: str | Path | None = None,
    profile: str | None = None,
) -> Settings:
    """Merge the config file, the environment and the flags (None = not given) into Settings."""
    env = os.environ if env is None else env
    profile = profile or env.get("OCCI_PROFILE") or None
    path = Path(config_file).expanduser() if config_file else config_path(env)
    values = _read_file(path, profile, explicit=config_file is not None or bool(env.get("OCCI_CONFIG")))
    for name, var in ENV_VARS.items():
        if env.get(var):
            values[name] = _coerce(name, env[var], f"environment variable {var}")
    # An OpenID Connect access token may sit in its own variable (it wins over OCCI_TOKEN there).
    if (flags.get("auth") or values.get("auth")) == "oidc" and env.get("OCCI_OIDC_TOKEN"):
        values["token"] = env["OCCI_OIDC_TOKEN"]
    for name, value in flags.items():
        if value is not None:
            if name not in _NAMES:
                raise BadRequest(f"unknown setting {name!r}")
            values[name] = value
    return replace(Settings(), **values)
