"""Composition root: Settings -> store, driver, registry, Service, Starlette app; `occipy serve`.

The only module that names a concrete store and driver.
"""

from __future__ import annotations

import gc
import logging
import sys
import click
from starlette.applications import Starlette

from occipy import __version__
from occipy.backends import load_driver_class
from occipy.config import ConfigError, Settings, load
from occipy.errors import OcciError
from occipy.http.app import create_app
from occipy.model.catalogue import standard_registry
from occipy.service.core import Service, ServiceOptions
from occipy.store.sql import SqlStore

log = logging.getLogger("occipy")


class Components:
    """The store, driver and service for some settings, and how to open and close them."""

    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        driver_class = load_driver_class(settings.driver)
        self.settings = settings
        self.driver = driver_class.from_options(settings.driver_options, settings.data_dir)
        self.store = SqlStore(settings.store_url, synchronous=settings.sqlite_synchronous)
        options = ServiceOptions(
            sync_wait=settings.sync_wait, max_page=settings.max_page, allow_delete_root=settings.allow_delete_root,
            reconcile_interval=settings.reconcile_interval,
        )
        self.service = Service(standard_registry(), self.store, self.driver, options)
        self.opened = False

    async def open(self) -> None:
        await self.store.open()
        try:
            await self.driver.open()
            await self.service.start()
        except BaseException:
            await self.store.close()
            raise
        self.opened = True
        # The store's read cache (every entity) lives as long as the process: keep it out of the
        # cyclic collector's scans, and let short-lived request garbage pile up a little longer
        # before a collection (docs/performance.md: -22 % CPU per create in the first profile).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)

    async def close(self) -> None:
        if not self.opened:
            return
        self.opened = False
        await self.service.stop()
        await self.driver.close()
        await self.store.close()

    def app(self, *, lifespan: bool) -> Starlette:
        return create_app(self.service, max_body=self.settings.max_body, max_headers=self.settings.max_headers,
                          on_startup=self.open if lifespan else None, on_shutdown=self.close if lifespan else None,
                          metrics=self.settings.metrics)


def build_app(settings: Settings) -> Starlette:
    """The app for these settings; the store and driver are opened by its lifespan."""
    return Components(settings).app(lifespan=True)


@click.group(help="occipy: an OCCI 1.2 server.")
@click.version_option(__version__, prog_name="occipy")
def cli() -> None:
    pass


@cli.command(help="Start the OCCI server (the embedded default: SQLite store, simulated cloud).")
@click.option("--host", default=None, help="Address to listen on [env OCCIPY_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [env OCCIPY_PORT; default 8080].")
@click.option("--data-dir", default=None, help="Directory for the database and driver files [env OCCIPY_DATA_DIR; default ./data].")
@click.option("--driver", default=None, help="Cloud driver: simulated or libvirt [env OCCIPY_DRIVER; default simulated].")
@click.option("--driver-opt", "driver_opts", multiple=True, metavar="KEY=VALUE",
              help="Driver option, repeatable (e.g. uri=qemu:///system) [env OCCIPY_<DRIVER>_<KEY>].")
@click.option("--database-url", default=None, help="SQLAlchemy URL of the store [env OCCIPY_DATABASE_URL; default SQLite in the data dir].")
@click.option("--config", "config_file", default=None, help="TOML config file [env OCCIPY_CONFIG].")
@click.option("--sync-wait", type=float, default=None, help="Seconds a request waits for a long operation before answering [default 0.2].")
@click.option("--log-level", default=None, help="Log level: debug, info, warning, error [default info].")
def serve(host: str | None, port: int | None, data_dir: str | None, driver: str | None,
          driver_opts: tuple[str, ...], database_url: str | None, config_file: str | None,
          sync_wait: float | None, log_level: str | None) -> None:
    import uvicorn

    try:
        settings = load(config_file=config_file, driver_opts=driver_opts, flags={
            "host": host, "port": port, "data_dir": data_dir, "driver": driver, "database_url": database_url,
            "sync_wait": sync_wait, "log_level": log_level,
        })
        components = Components(settings)
    except (ConfigError, ValueError, OcciError) as error:
        raise click.ClickException(str(error)) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(components.app(lifespan=False), host=settings.host, port=settings.port,
                            loop="none", http="httptools", server_header=False, log_level=settings.log_level,
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    async def run() -> None:
        # The store and the driver are opened before the socket, in the loop that serves: an
        # unreachable hypervisor or a missing pool is one clear line and exit 1, not a traceback.
        await components.open()
        click.echo(f"occipy {__version__}: OCCI 1.2 on http://{settings.host}:{settings.port}/ "
                   f"(query interface /-/), store {settings.store_url}, driver {settings.driver}", err=True)
        try:
            await server.serve()
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
