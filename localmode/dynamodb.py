"""moto's DynamoDB-compatible server, answering one request at a time.

moto applies an ``UpdateItem``'s actions one after another on the live item, so
its usual threaded server lets a concurrent ``Query`` see a half-updated item,
which DynamoDB never shows. Serving requests serially restores DynamoDB's
per-item atomicity, which the aggregates rely on.

``python -m localmode.dynamodb --port 8000``
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer


class _Server(BaseWSGIServer):
    # Connections waiting to be served. werkzeug's 128 overflows when many clients call at once
    # (a course rebuild reads 16 roster partitions concurrently): Linux then drops their SYNs and
    # they wait a second or more to connect, where queued ones are served in milliseconds.
    request_queue_size = 4096


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
    app = DomainDispatcherApplication(create_backend_app)
    _Server(args.host, args.port, app, handler=MotoRequestHandler).serve_forever()


if __name__ == "__main__":
    main()
