"""``python -m service.accounts create-admin --email admin@example.org``: make the first admin.

It creates the account (or completes an existing one) in the configured user
pool (``STATS_COGNITO_USER_POOL_ID``, ``STATS_AUTH_CLIENT_ID``, ``AWS_REGION``),
sets its password permanently and puts it in the ``admin`` group. The password
comes from ``STATS_ADMIN_PASSWORD`` or is asked for on the terminal; it is
never an argument, so it stays out of shell history and process listings.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from service.__main__ import load_or_exit
from service.accounts.cognito import create_admin
from service.domain.errors import DependencyUnavailable, ServiceError


def _password() -> str:
    password = os.environ.get("STATS_ADMIN_PASSWORD")
    if password:
        return password
    password = getpass.getpass("Password for the admin: ")
    if getpass.getpass("Again: ") != password:
        raise ServiceError("the two passwords differ")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.accounts", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create (or complete) an admin account")
    create.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    settings = load_or_exit()
    try:
        user_id = asyncio.run(create_admin(settings, args.email, _password()))
    except ServiceError as exc:
        details = [f"{name}: {text}" for name, text in (exc.fields or {}).items()]
        if isinstance(exc, DependencyUnavailable):
            details.append(exc.reason)
        detail = "; ".join(details)
        print(f"create-admin failed: {exc.message}{f' ({detail})' if detail else ''}", file=sys.stderr)
        return 1
    print(f"admin {args.email} is user {user_id}; log in with POST /auth/login")
    return 0


if __name__ == "__main__":
    sys.exit(main())
