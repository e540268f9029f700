"""``python -m localmode``: the service, with local servers started for the endpoints not set."""

from __future__ import annotations

import sys

from localmode.servers import local_dependencies
from service.__main__ import load_or_exit, serve


def main() -> int:
    settings = load_or_exit()
    with local_dependencies(settings) as resolved:
        serve(resolved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
