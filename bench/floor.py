"""The floor: a bare Starlette app that answers GET and POST on any path with a fixed 1 KiB body.

`make bench` (bench/run.sh) serves it with the same uvicorn settings as `occipy serve` (one
worker, uvloop, httptools, no access log, no Server header) on the same CPU, so each occipy figure
can be read as a ratio to what the HTTP stack alone does on this machine in the same run.
Imports only Starlette: nothing of occipy.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = (b"x" * 1023) + b"\n"  # exactly 1 KiB
assert len(BODY) == 1024


async def fixed(request: Request) -> Response:
    # Read the body as the occipy adapter does, so a POST costs the floor what it costs occipy.
    if request.method == "POST":
        await request.body()
    return Response(BODY, media_type="text/plain")


app = Starlette(routes=[Route("/{path:path}", fixed, methods=["GET", "POST"])])
