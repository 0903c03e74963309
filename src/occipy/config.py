"""Settings: defaults < TOML config file < OCCIPY_* environment < command-line flags.

Driver options are strings collected from `[drivers.<name>]` in the config file,
`OCCIPY_<DRIVER>_<KEY>` environment variables and `--driver-opt key=value` flags.
Quotas come from the config file only: `[quotas]` (every tenant) and `[quotas.tenants.<name>]`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class CloudSettings:
    """One cloud the server fronts: its name (a strict term), its driver and the driver's options."""

    name: str
    driver: str
    options: Mapping[str, str] = field(default_factory=dict)


_CLOUD_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")


class ConfigError(Exception):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    # One driver, or several comma-separated ("simulated,docker"): one cloud each, named after it;
    # the first is the default cloud. `[clouds.NAME]` tables in the config file (`clouds`) name
    # clouds themselves (two libvirt hosts, two EC2 regions) and take precedence.
    driver: str = "simulated"
    driver_options: Mapping[str, str] = field(default_factory=dict)  # the first cloud's options
    # Options of the other drivers of a `driver` list, by driver name.
    other_driver_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    clouds: tuple[CloudSettings, ...] = ()
    database_url: str | None = None  # default: sqlite:///<data_dir>/occipy.db
    sqlite_synchronous: str = "NORMAL"
    sync_wait: float = 0.2
    delete_wait: float = 30.0  # how long a DELETE waits for the cloud (D-DELETE-DURABLE)
    max_page: int = 1000
    max_body: int = 1 << 20
    max_headers: int = 100
    allow_delete_root: bool = False
    reconcile_interval: float = 30.0  # the pause after a reconcile pass, or longer (D-RECONCILE-SHARE)
    # [monitoring] docs/monitoring.md, docs/sla.md
    monitoring_tick: float = 1.0  # sampling resolution (s): the shortest period, the worst granularity
    monitoring_retention: int = 1000  # samples kept per collector
    monitoring_max_age: float = 86400.0  # seconds a sample is kept
    sla_interval: float = 10.0  # seconds between two assessments of the SLA terms
    log_level: str = "info"
    # Authentication (docs/security.md): comma-separated methods among basic, oidc, keystone, x509;
    # empty: everyone is anonymous, which only a loopback address allows unless allow_anonymous.
    auth: str = ""
    allow_anonymous: bool = False
    htpasswd: str | None = None  # Apache htpasswd file (bcrypt entries)
    groups: str | None = None  # Apache AuthGroupFile: `tenant: user1 user2`
    roles: str | None = None  # same format: `admin: alice`, `reader: bob`
    oidc_issuer: str | None = None
    oidc_audience: str | None = None  # comma-separated accepted `aud` values
    oidc_user_claim: str = "sub"
    oidc_tenant_claim: str | None = None
    oidc_tenant_prefix: str | None = None
    oidc_roles_claim: str | None = None
    oidc_jwks_min_interval: float = 10.0
    keystone_url: str | None = None
    keystone_user: str | None = None
    keystone_password: str | None = field(default=None, repr=False)
    keystone_project: str | None = None
    keystone_user_domain: str = "Default"
    keystone_project_domain: str = "Default"
    keystone_cache_ttl: float = 300.0
    # ---- the edge (docs/security.md, "The edge: limits and timeouts") ----
    log_format: str = "text"  # text | json
    max_header_bytes: int = 64 * 1024  # request line + header fields, counted while reading: 431
    header_timeout: float = 10.0  # connection (or first byte of a request) to the end of its headers: 408
    body_timeout: float = 30.0  # longest silence between two pieces of a request body: 408
    body_total_timeout: float = 120.0  # longest time to receive a whole request body: 408
    max_connections: int = 1000  # open connections; beyond them a new one is answered 503 and closed
    # ---- TLS (docs/security.md, "TLS and client certificates") ----
    tls_cert: Path | None = None  # PEM certificate (chain) the server presents; with tls_key: HTTPS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # PEM CA bundle that signs acceptable client certificates
    tls_client_cert: str = "none"  # none | optional | required
    x509_map: Path | None = None  # TOML: client certificate subject DN -> user, tenant, roles
    # Prometheus metrics at /metrics and the per-request counters (docs/metrics.md).
    metrics: bool = True
    # ---- issue 8 (tenancy branch; docs/security.md, "Quotas and rate limits") ----
    # Per-tenant quotas, config file only: [quotas] name = limit, [quotas.tenants.<tenant>] overrides.
    quotas: Mapping[str, float] = field(default_factory=dict)
    tenant_quotas: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Rate limits in the `limits` notation ("20/second;600/minute"); "": none.
    rate_limit: str = ""  # every request of one principal (anonymous: of one client address)
    rate_limit_writes: str = ""  # POST/PUT/PATCH/DELETE of one principal, on top of rate_limit
    rate_limit_auth_failures: str = ""  # refused credentials from one client address
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses or
    # networks, "*" for any); "": none, the headers are ignored (docs/security.md, "Behind a proxy").
    forwarded_allow_ips: str = ""
    # ---- the event stream GET /-/events (issue 12, docs/events.md) ----
    events_keep: int = 10_000  # events kept for resuming streams (Last-Event-ID) ...
    events_max_age: float = 86_400.0  # ... and for at most this many seconds
    events_keepalive: float = 15.0  # seconds of silence before a stream sends a keep-alive comment
    events_poll: float = 1.0  # seconds between reads of the event log for other processes' events
    # Operation records (GET /-/operations/): those that ended are kept while among the newest
    # operations_keep and for at most operations_max_age seconds (store.base.OperationRetention).
    operations_keep: int = 100_000
    operations_max_age: float = 604_800.0
    # ---- scale-out (docs/scaleout.md) ----
    workers: int = 1  # server processes on one socket; more than 1 needs a PostgreSQL database_url
    store_cache: int = 20000  # entities a process keeps in its read cache (bounded memory)
    # Attributes with an expression index in the store: filters on them answer from the index.
    indexed_attributes: str = "occi.core.title,occi.compute.hostname,occi.compute.state"

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'occipy.db').resolve()}"


_TYPES = {f.name: f.type for f in fields(Settings)}
# Settings that are not single values (read from their own tables, never from the environment).
_TABLES = frozenset({"driver_options", "other_driver_options", "clouds", "quotas", "tenant_quotas"})
# The quotas a tenant can have (service/options.py QUOTA_NAMES, which a test keeps equal).
QUOTAS = ("computes", "cores", "memory", "storage", "networks")


def _quota_table(where: str, table: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of quotas ({', '.join(QUOTAS)})")
    limits: dict[str, float] = {}
    for name, value in table.items():
        if name not in QUOTAS:
            raise ConfigError(f"{where}: unknown quota {name!r}; the quotas are {', '.join(QUOTAS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}.{name}: {value!r} is not a number (-1: unlimited)")
        limits[name] = float(value)
    return limits


def _quotas(table: Any) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """`[quotas]` defaults and `[quotas.tenants.<name>]` overrides."""
    if not isinstance(table, dict):
        raise ConfigError("quotas must be a table: [quotas]")
    table = dict(table)
    tenants = table.pop("tenants", {})
    if not isinstance(tenants, dict):
        raise ConfigError("quotas.tenants must hold one table per tenant: [quotas.tenants.<name>]")
    return (_quota_table("[quotas]", table),
            {str(name): _quota_table(f"[quotas.tenants.{name}]", limits) for name, limits in tenants.items()})


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
        if kind in ("Path", Path, "Path | None"):
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
    cloud_tables: list[CloudSettings] = []
    path = config_file or env.get("OCCIPY_CONFIG")
    if path:
        try:
            document = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read the config file {path}: {error}") from None
        for key, value in document.items():
            if key == "drivers" and isinstance(value, dict):
                driver_tables = {name: {k: str(v) for k, v in table.items()} for name, table in value.items()}
            elif key == "clouds" and isinstance(value, dict):
                cloud_tables = [_cloud_table(name, table, path) for name, table in value.items()]
            elif key == "quotas":
                values["quotas"], values["tenant_quotas"] = _quotas(value)
            elif key in _TYPES and key not in _TABLES:
                values[key] = _convert(key, value)
            else:
                raise ConfigError(f"unknown setting {key!r} in {path}")
    for name in _TYPES:
        if name in _TABLES:
            continue
        raw = env.get(f"OCCIPY_{name.upper()}")
        if raw not in (None, ""):
            values[name] = _convert(name, raw)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _convert(name, value)
    settings = replace(Settings(), **values)
    names = [name.strip() for name in settings.driver.split(",") if name.strip()]
    if not names:
        raise ConfigError("setting driver: name at least one driver")
    by_driver: dict[str, dict[str, str]] = {}
    for name in names:
        options: dict[str, str] = dict(driver_tables.get(name, {}))
        prefix = f"OCCIPY_{name.upper()}_"
        for key, value in env.items():
            if key.startswith(prefix):
                options[key[len(prefix):].lower()] = value
        by_driver[name] = options
    for item in driver_opts:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--driver-opt needs key=value, got {item!r}")
        # `docker.base_url=...` scopes an option to one driver of a list; plain keys go to the first.
        scope, dot, bare = key.strip().partition(".")
        if dot and scope in by_driver:
            by_driver[scope][bare] = value
        else:
            by_driver[names[0]][key.strip()] = value
    settings = replace(settings, driver_options=by_driver[names[0]],
                       other_driver_options={name: by_driver[name] for name in names[1:]},
                       clouds=tuple(cloud_tables))
    check_edge(settings)
    return settings


def _cloud_table(name: str, table: Any, path: str) -> CloudSettings:
    if not isinstance(table, dict) or not isinstance(table.get("driver"), str):
        raise ConfigError(f"[clouds.{name}] in {path} needs driver = \"<driver name>\"")
    if not _CLOUD_NAME.match(name):
        raise ConfigError(f"[clouds.{name}] in {path}: a cloud name is lower-case letters, digits, '-' and '_', "
                          "starting with a letter")
    return CloudSettings(name=name, driver=table["driver"],
                         options={k: str(v) for k, v in table.items() if k != "driver"})


def cloud_settings(settings: Settings) -> list[CloudSettings]:
    """The clouds to serve, the default first: `[clouds.NAME]` tables, else one per `driver` name."""
    if settings.clouds:
        return list(settings.clouds)
    names = [name.strip() for name in settings.driver.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"setting driver: {settings.driver!r} names a driver twice; use [clouds.NAME] "
                          "tables for two clouds of one driver")
    for name in names:
        if not _CLOUD_NAME.match(name):
            raise ConfigError(f"setting driver: {name!r} is not a driver name")
    return [CloudSettings(name=name, driver=name,
                          options=settings.driver_options if i == 0 else settings.other_driver_options.get(name, {}))
            for i, name in enumerate(names)]


_CHOICES: Mapping[str, tuple[str, ...]] = {
    "log_format": ("text", "json"),
    "tls_client_cert": ("none", "optional", "required"),
}


def check_edge(settings: Settings) -> None:
    """Refuse edge and TLS settings that cannot work, naming the setting (ConfigError)."""
    for name, choices in _CHOICES.items():
        if getattr(settings, name) not in choices:
            raise ConfigError(f"setting {name}: {getattr(settings, name)!r} is not one of {', '.join(choices)}")
    if settings.workers < 1:
        raise ConfigError("setting workers: must be 1 or more")
    if settings.workers > 1 and not (settings.database_url or "").startswith(("postgresql", "postgres:")):
        raise ConfigError("setting workers: several server processes need a PostgreSQL database_url "
                          "(OCCIPY_DATABASE_URL=postgresql://...); SQLite belongs to one process")
    for name in ("max_header_bytes", "max_connections", "header_timeout", "body_timeout", "body_total_timeout",
                 "events_keep", "events_max_age", "events_keepalive", "events_poll",  # events_*: issue 12
                 "operations_keep", "operations_max_age"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting {name}: must be greater than 0")
    for name in ("monitoring_tick", "monitoring_max_age", "sla_interval", "monitoring_retention"):  # [monitoring]
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting {name}: must be greater than 0")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("settings tls_cert and tls_key: give both (HTTPS) or neither (HTTP)")
    if settings.tls_client_cert != "none":
        if settings.tls_cert is None:
            raise ConfigError("setting tls_client_cert: client certificates need HTTPS (tls_cert and tls_key)")
        if settings.tls_client_ca is None:
            raise ConfigError("setting tls_client_cert: needs tls_client_ca, the CA bundle that signs them")
    for name in ("tls_cert", "tls_key", "tls_client_ca", "x509_map"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"setting {name}: {path} is not a readable file")
