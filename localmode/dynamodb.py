"""moto's DynamoDB-compatible server, answering one request at a time over kept-alive connections.

moto applies an ``UpdateItem``'s actions one after another on the live item, so
its usual threaded server lets a concurrent ``Query`` see a half-updated item,
which DynamoDB never shows. One request at a time restores DynamoDB's per-item
atomicity, which the aggregates rely on.

Connections stay open between requests (HTTP/1.1), as DynamoDB's do. moto's own
server (werkzeug's) closes every connection after its answer, which charges each
call a new TCP connection that no client of DynamoDB pays. waitress keeps them
and runs the application in one thread, so requests from any number of open
connections are answered one after another.

``python -m localmode.dynamodb --port 8000``
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

# Connections waiting to be accepted. Many clients calling at once (a course rebuild reads 16 roster
# partitions concurrently, a load test opens hundreds) overflow a short queue: Linux then drops their
# SYNs and they wait a second or more to connect, where queued ones are served in milliseconds.
_BACKLOG = 4096
# Open connections, far above any test's or benchmark's client pool.
_CONNECTIONS = 4096


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    # waitress warns whenever requests queue behind its one thread, which is the design here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress.serve(
        DomainDispatcherApplication(create_backend_app),
        host=args.host,
        port=args.port,
        threads=1,
        backlog=_BACKLOG,
        connection_limit=_CONNECTIONS,
        channel_timeout=3600,
        ident="moto",
        _quiet=True,
    )


if __name__ == "__main__":
    main()
