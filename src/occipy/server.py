"""Composition root: Settings -> store, driver, registry, Service, Starlette app; `occipy serve`.

The only module that names a concrete store and driver.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

import click
import uvicorn
from starlette.applications import Starlette

from occipy import __version__
from occipy.backends import load_driver_class
from occipy.backends.base import Driver
from occipy.config import ConfigError, Settings, cloud_settings, load
from occipy.errors import OcciError
from occipy.http import logs
from occipy.http.app import create_app
from occipy.http.protocol import EdgeLimits, first_pem_certificate, protocol_class, tls_context
from occipy.identity.chain import build_authenticator, check_exposure, methods
from occipy.model.standard import standard_registry
from occipy.model.state import state_attribute
from occipy.observability import metrics
from occipy.service.options import QuotaSettings, RateLimitSettings, ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.base import EventRetention, OperationRetention
from occipy.store.sql import SqlStore

log = logging.getLogger("occipy")


class Components:
    """The store, driver and service for some settings, and how to open and close them."""

    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        # One cloud per driver of `driver` (or per [clouds.NAME] table), the first the default.
        self.drivers: list[tuple[str, Driver]] = []
        for cloud in cloud_settings(settings):
            driver_class = load_driver_class(cloud.driver)
            data_dir = settings.data_dir if not self.drivers else settings.data_dir / "clouds" / cloud.name
            data_dir.mkdir(parents=True, exist_ok=True)
            self.drivers.append((cloud.name, driver_class.from_options(cloud.options, data_dir)))
        self.driver = self.drivers[0][1]
        indexed = [name.strip() for name in settings.indexed_attributes.split(",") if name.strip()]
        self.store = SqlStore(settings.store_url, synchronous=settings.sqlite_synchronous,
                              events=EventRetention(settings.events_keep, settings.events_max_age),  # issue 12
                              operations=OperationRetention(settings.operations_keep, settings.operations_max_age),
                              cache_size=settings.store_cache, indexed_attributes=indexed)  # issue 11
        options = ServiceOptions(
            sync_wait=settings.sync_wait, delete_wait=settings.delete_wait, max_page=settings.max_page, allow_delete_root=settings.allow_delete_root,
            reconcile_interval=settings.reconcile_interval,
            events_keepalive=settings.events_keepalive, events_poll=settings.events_poll,  # issue 12
            # [monitoring]
            monitoring_tick=settings.monitoring_tick, monitoring_retention=settings.monitoring_retention,
            monitoring_max_age=settings.monitoring_max_age, sla_interval=settings.sla_interval,
            # issue 8 (tenancy branch): quotas and rate limits
            quotas=QuotaSettings(settings.quotas, settings.tenant_quotas),
            rate_limits=RateLimitSettings(settings.rate_limit, settings.rate_limit_writes,
                                          settings.rate_limit_auth_failures),
        )
        self.authenticator = build_authenticator(settings)
        self.service = Service(standard_registry(), self.store, self.drivers, options,
                               authenticator=self.authenticator)
        self.opened = False

    async def open(self) -> None:
        await self.store.open()
        try:
            # Opens every cloud's driver: with one cloud an unreachable one stops start-up here.
            await self.service.start()
        except BaseException:
            await self.store.close()
            raise
        self.opened = True
        # occipy_entities{kind,state} at scrape time, counted by the store (cached for a few seconds).
        metrics.set_entity_source(lambda: self.store.counts(state_attribute))
        # What start-up made lives as long as the process: keep it out of the cyclic collector's
        # scans, and let short-lived request garbage pile up a little longer before a collection
        # (docs/performance.md: -22 % CPU per create in the first profile).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)

    async def close(self) -> None:
        if not self.opened:
            return
        self.opened = False
        await self.service.stop()  # closes the drivers
        await self.store.close()
        await self.authenticator.close()

    def app(self, *, lifespan: bool) -> Starlette:
        return create_app(self.service, max_body=self.settings.max_body, max_headers=self.settings.max_headers,
                          on_startup=self.open if lifespan else None, on_shutdown=self.close if lifespan else None,
                          metrics=self.settings.metrics)


def build_app(settings: Settings) -> Starlette:
    """The app for these settings; the store and driver are opened by its lifespan."""
    return Components(settings).app(lifespan=True)


def edge_limits(settings: Settings) -> EdgeLimits:
    server_cert = None
    if settings.tls_cert is not None:
        try:
            server_cert = first_pem_certificate(settings.tls_cert.read_text())
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"setting tls_cert: cannot read {settings.tls_cert}: {error}") from None
    return EdgeLimits(max_header_bytes=settings.max_header_bytes, header_timeout=settings.header_timeout,
                      body_timeout=settings.body_timeout, body_total_timeout=settings.body_total_timeout,
                      max_connections=settings.max_connections, server_cert_pem=server_cert)


def uvicorn_config(settings: Settings, app: Starlette, **options: Any) -> uvicorn.Config:
    """uvicorn's Config for these settings: the bounded edge protocol (http/protocol.py), and TLS.

    `options` go to uvicorn.Config as they are (loop, log_level, lifespan, ...).
    """
    ssl_factory = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        cert, key = str(settings.tls_cert), str(settings.tls_key)
        client_ca = str(settings.tls_client_ca) if settings.tls_client_ca is not None else None
        try:
            context = tls_context(cert, key, client_ca, settings.tls_client_cert)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            raise ConfigError(f"cannot use the TLS certificate, key or client CA: {error}") from None
        ssl_factory = lambda config, default: context
    # issue 8: X-Forwarded-For/-Proto are believed only from forwarded_allow_ips (uvicorn's own
    # default would believe them from 127.0.0.1); without it they are ignored.
    proxies = [item.strip() for item in settings.forwarded_allow_ips.split(",") if item.strip()]
    return uvicorn.Config(app, host=settings.host, port=settings.port, http=protocol_class(edge_limits(settings)),
                          ws="none", server_header=False, ssl_context_factory=ssl_factory,
                          proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None, **options)


@click.group(help="occipy: an OCCI 1.2 server.")
@click.version_option(__version__, prog_name="occipy")
def cli() -> None:
    pass


@cli.command(help="Start the OCCI server (the embedded default: SQLite store, simulated cloud).")
@click.option("--host", default=None, help="Address to listen on [env OCCIPY_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [env OCCIPY_PORT; default 8080].")
@click.option("--data-dir", default=None, help="Directory for the database and driver files [env OCCIPY_DATA_DIR; default ./data].")
@click.option("--driver", default=None, help="Cloud driver(s), comma-separated for several clouds: simulated, libvirt, docker, ec2, openstack, occi "
              "[env OCCIPY_DRIVER; default simulated].")
@click.option("--driver-opt", "driver_opts", multiple=True, metavar="KEY=VALUE",
              help="Driver option, repeatable (e.g. uri=qemu:///system; <driver>.KEY=VALUE for another cloud) "
              "[env OCCIPY_<DRIVER>_<KEY>].")
@click.option("--database-url", default=None, help="SQLAlchemy URL of the store [env OCCIPY_DATABASE_URL; default SQLite in the data dir].")
@click.option("--config", "config_file", default=None, help="TOML config file [env OCCIPY_CONFIG].")
@click.option("--sync-wait", type=float, default=None, help="Seconds a request waits for a long operation before answering [default 0.2].")
@click.option("--log-level", default=None, help="Log level: debug, info, warning, error [default info].")
@click.option("--auth", default=None, metavar="METHODS",
              help="Authentication, comma-separated: basic, oidc, keystone, x509 [env OCCIPY_AUTH; "
                   "default none: anonymous, loopback only].")
@click.option("--allow-anonymous", is_flag=True, default=None,
              help="Serve a non-loopback address without authentication [env OCCIPY_ALLOW_ANONYMOUS].")
@click.option("--htpasswd", default=None, metavar="FILE",
              help="Basic: Apache htpasswd file with bcrypt entries (htpasswd -B) [env OCCIPY_HTPASSWD].")
@click.option("--groups", default=None, metavar="FILE",
              help="Basic: tenants as an Apache group file, `tenant: user1 user2` [env OCCIPY_GROUPS].")
@click.option("--roles", default=None, metavar="FILE",
              help="Basic: roles in the same format, `admin: alice`, `reader: bob`; others are member "
                   "[env OCCIPY_ROLES].")
@click.option("--oidc-issuer", default=None, metavar="URL",
              help="OIDC: the provider's issuer URL (discovery at /.well-known/openid-configuration) "
                   "[env OCCIPY_OIDC_ISSUER].")
@click.option("--oidc-audience", default=None,
              help="OIDC: accepted `aud` values, comma-separated [env OCCIPY_OIDC_AUDIENCE].")
@click.option("--oidc-user-claim", default=None, help="OIDC: claim naming the user [env OCCIPY_OIDC_USER_CLAIM; default sub].")
@click.option("--oidc-tenant-claim", default=None,
              help="OIDC: claim naming the tenant, e.g. eduperson_entitlement or groups "
                   "[env OCCIPY_OIDC_TENANT_CLAIM; default: every user in tenant default].")
@click.option("--oidc-tenant-prefix", default=None,
              help="OIDC: use the first tenant-claim value with this prefix, up to the next ':' or '#' "
                   "(e.g. urn:mace:egi.eu:group:) [env OCCIPY_OIDC_TENANT_PREFIX].")
@click.option("--oidc-roles-claim", default=None,
              help="OIDC: claim listing roles (admin, member, reader) [env OCCIPY_OIDC_ROLES_CLAIM].")
@click.option("--keystone-url", default=None, metavar="URL",
              help="Keystone: the identity service, e.g. https://keystone:5000 [env OCCIPY_KEYSTONE_URL].")
@click.option("--keystone-user", default=None,
              help="Keystone: occipy's service user; without it tokens validate themselves "
                   "[env OCCIPY_KEYSTONE_USER].")
@click.option("--keystone-password", default=None,
              help="Keystone: the service user's password [env OCCIPY_KEYSTONE_PASSWORD; prefer the variable].")
@click.option("--keystone-project", default=None, help="Keystone: the service user's project [env OCCIPY_KEYSTONE_PROJECT].")
@click.option("--keystone-user-domain", default=None,
              help="Keystone: the service user's domain [env OCCIPY_KEYSTONE_USER_DOMAIN; default Default].")
@click.option("--keystone-project-domain", default=None,
              help="Keystone: the service project's domain [env OCCIPY_KEYSTONE_PROJECT_DOMAIN; default Default].")
@click.option("--keystone-cache-ttl", type=float, default=None,
              help="Keystone: seconds a validated token is trusted [env OCCIPY_KEYSTONE_CACHE_TTL; default 300].")
@click.option("--log-format", type=click.Choice(logs.FORMATS), default=None,
              help="Log lines as text or as JSON objects [env OCCIPY_LOG_FORMAT; default text].")
@click.option("--max-header-bytes", type=int, default=None,
              help="Largest request header section, counted while read; more is 431 "
                   "[env OCCIPY_MAX_HEADER_BYTES; default 65536].")
@click.option("--header-timeout", type=float, default=None,
              help="Seconds from a connection (or a request's first byte) to the end of its headers; "
                   "later is 408 [env OCCIPY_HEADER_TIMEOUT; default 10].")
@click.option("--body-timeout", type=float, default=None,
              help="Longest silence, in seconds, within a request body; longer is 408 "
                   "[env OCCIPY_BODY_TIMEOUT; default 30].")
@click.option("--body-total-timeout", type=float, default=None,
              help="Seconds a whole request body may take; longer is 408 [env OCCIPY_BODY_TOTAL_TIMEOUT; default 120].")
@click.option("--max-connections", type=int, default=None,
              help="Open connections served at once; more are answered 503 and closed "
                   "[env OCCIPY_MAX_CONNECTIONS; default 1000].")
@click.option("--tls-cert", default=None, help="PEM certificate (chain) to serve HTTPS with [env OCCIPY_TLS_CERT].")
@click.option("--tls-key", default=None, help="PEM private key of --tls-cert [env OCCIPY_TLS_KEY].")
@click.option("--tls-client-ca", default=None,
              help="PEM CA bundle that signs accepted client certificates [env OCCIPY_TLS_CLIENT_CA].")
@click.option("--tls-client-cert", type=click.Choice(("none", "optional", "required")), default=None,
              help="Ask clients for a certificate: none, optional or required [env OCCIPY_TLS_CLIENT_CERT; default none].")
@click.option("--workers", type=int, default=None,
              help="Server processes sharing the port; more than 1 needs a PostgreSQL --database-url "
                   "(docs/scaleout.md) [env OCCIPY_WORKERS; default 1].")
@click.option("--x509-map", default=None,
              help="TOML file mapping client certificate subjects to users, tenants and roles "
                   "(docs/security.md) [env OCCIPY_X509_MAP].")
@click.option("--rate-limit", default=None, metavar="LIMITS",
              help="Requests per principal, e.g. '20/second;600/minute'; more are 429 "
                   "[env OCCIPY_RATE_LIMIT; default none].")
@click.option("--rate-limit-writes", default=None, metavar="LIMITS",
              help="Writes (POST, PUT, PATCH, DELETE) per principal, on top of --rate-limit "
                   "[env OCCIPY_RATE_LIMIT_WRITES; default none].")
@click.option("--rate-limit-auth-failures", default=None, metavar="LIMITS",
              help="Requests with refused credentials per client address, e.g. '10/minute'; then 429 "
                   "[env OCCIPY_RATE_LIMIT_AUTH_FAILURES; default none].")
@click.option("--forwarded-allow-ips", default=None, metavar="ADDRESSES",
              help="Proxies whose X-Forwarded-For/-Proto are believed, comma-separated addresses or "
                   "networks [env OCCIPY_FORWARDED_ALLOW_IPS; default none: the headers are ignored].")
def serve(config_file: str | None, driver_opts: tuple[str, ...], **flags: Any) -> None:
    try:
        settings = load(config_file=config_file, driver_opts=driver_opts, flags=flags)
        check_exposure(settings)
        if settings.workers > 1:
            listener = _listen(settings)
            logs.configure(settings.log_level, settings.log_format)
            sys.exit(_supervise(settings, listener))
        _serve_one(settings, None)
    except (ConfigError, ValueError, OcciError) as error:
        raise click.ClickException(str(error)) from None


# ---- worker processes (docs/scaleout.md) -------------------------------------------------------


def _listen(settings: Settings) -> socket.socket:
    """The listening socket every worker accepts from (the kernel hands each connection to one)."""
    try:
        listener = socket.create_server((settings.host, settings.port), backlog=2048, reuse_port=False)
    except OSError as error:
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {error}") from None
    listener.set_inheritable(True)
    return listener


def _supervise(settings: Settings, listener: socket.socket) -> int:
    """Fork `workers` processes that serve `listener`; start a new one when one dies (kill -9, OOM).

    Every worker is a whole server (its own store connections, driver and lanes); they share only
    the database, which orders their work (claims, D-SCALEOUT). SIGTERM/SIGINT stop them all.
    """
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _serve_one(settings, listener, worker=number)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException:  # reported, then the supervisor starts another
                log.exception("worker %d failed", number)
                code = 1
            os._exit(code)
        children[pid] = number

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"occipy {__version__}: {settings.workers} workers on http://{settings.host}:{settings.port}/ "
               f"(supervisor pid {os.getpid()}), store {settings.store_url}", err=True)
    for number in range(settings.workers):
        spawn(number)
    started: dict[int, float] = {}
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        number_ = children.pop(pid) if pid in children else None
        if number_ is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        log.warning("worker %d (pid %d) ended with %s; starting another", number_, pid, code)
        if time.monotonic() - started.get(number_, 0.0) < 1.0:
            time.sleep(1.0)  # a worker that cannot start must not spin
        started[number_] = time.monotonic()
        spawn(number_)
    return 0


def _serve_one(settings: Settings, listener: socket.socket | None, worker: int | None = None) -> None:
    """One server process: open the store and the driver, then serve (on `listener` if given)."""
    components = Components(settings)
    logs.configure(settings.log_level, settings.log_format)
    config = uvicorn_config(settings, components.app(lifespan=False), loop="none",
                            log_level=settings.log_level, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    async def run() -> None:
        # The store and the driver are opened before the socket, in the loop that serves: an
        # unreachable hypervisor or a missing pool is one clear line and exit 1, not a traceback.
        await components.open()
        scheme = "https" if settings.tls_cert is not None else "http"
        who = f"worker {worker} (pid {os.getpid()}): " if worker is not None else ""
        click.echo(f"occipy {__version__}: {who}OCCI 1.2 on {scheme}://{settings.host}:{settings.port}/ "
                   f"(query interface /-/), store {settings.store_url}, driver {settings.driver}, "
                   f"auth {', '.join(methods(settings)) or 'none (anonymous)'}", err=True)
        try:
            await server.serve(sockets=[listener] if listener is not None else None)
        finally:
            await components.close()

    try:
        import uvloop

        uvloop.run(run())
    except OcciError as error:
        raise click.ClickException(f"cannot start: {error.message}") from None
    except OSError as error:
        raise click.ClickException(f"cannot start: {error}") from None
    if not server.started:
        sys.exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
