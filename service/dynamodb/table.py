"""Create the sessions table: ``python -m service.dynamodb.table create``.

The service never creates it implicitly in production; local mode calls
:func:`ensure_table` at start-up, and deployments run this module once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from service.dynamodb.client import dynamodb_client
from service.dynamodb.codec import PARTITION_KEY, SORT_KEY
from service.settings import load_settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


async def ensure_table(client: DynamoDBClient, table: str) -> bool:
    """Create the table if it is missing and wait until it is active; True if created."""
    try:
        await client.describe_table(TableName=table)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
    try:
        await client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
                {"AttributeName": SORT_KEY, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            # Change capture (service.changes) reads every change from the table's stream.
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    except ClientError as exc:
        # Another task created it between our two calls.
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    waiter = client.get_waiter("table_exists")
    await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    log.info("created table %s", table)
    return True


async def _create() -> None:
    settings = load_settings()
    async with dynamodb_client(settings) as client:
        created = await ensure_table(client, settings.dynamodb_table)
    print(f"table {settings.dynamodb_table}: {'created' if created else 'already exists'}")


def main(argv: list[str]) -> int:
    if argv != ["create"]:
        print("usage: python -m service.dynamodb.table create", file=sys.stderr)
        return 2
    asyncio.run(_create())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
