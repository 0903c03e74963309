"""Behaviour switches of the service, settable from the server configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    # How long a request waits for a long operation before answering with the in-flight state.
    sync_wait: float = 0.2
    # How long a DELETE waits for the cloud to delete (D-DELETE-DURABLE): GFD.223 clients expect a
    # GET after a 200 to be 404; a slower cloud's entity stays visible as being deleted.
    delete_wait: float = 30.0
    # Largest page size a client may ask for (GFD.223 §6: larger -> 413).
    max_page: int = 1000
    # DELETE on the root `/` deletes everything: refused unless enabled (http-protocol.md §6.9).
    allow_delete_root: bool = False
    # Scheme of provider templates offered by the driver.
    provider_scheme: str = "http://occipy.org/occi/"
    # A text/occi answer whose largest header would exceed this is refused with 406 (GFD.185 §3.6.6).
    max_header_value: int = 65536
    # Seconds between two reconcile passes for drivers whose cloud can change on its own.
    reconcile_interval: float = 30.0
    # How long a `save` action waits for the new template: its answer must render it (GFD.224 §3.1).
    save_timeout: float = 300.0
    # ---- issue 12: the event stream (GET /-/events) ----
    # Seconds of silence after which a stream sends a keep-alive comment (proxies close idle streams).
    events_keepalive: float = 15.0
    # Seconds between two reads of the event log for other processes' events (this process's
    # commits wake the streams at once).
    events_poll: float = 1.0
