"""The audit log of auth events."""

from __future__ import annotations

from typing import Any

import orjson

from db.pool import Database
from models.fragments import AUDIT_INSERT, ISO_UTC

INSERT_EVENT = f"{AUDIT_INSERT} VALUES (%s, %s, %s, %s, %s::jsonb)"

# An entry as the log shows it (event_record turns the row into the contract's object).
EVENT_COLUMNS = f"id, to_char(at AT TIME ZONE 'UTC', {ISO_UTC}), user_id, event, kind, address, detail::text"

SELECT_EVENTS = f"""
SELECT {EVENT_COLUMNS}
FROM auth_events
WHERE (%(before)s::bigint IS NULL OR id < %(before)s) AND (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
ORDER BY id DESC
LIMIT %(limit)s
"""


async def record_event(
    db: Database,
    *,
    user_id: int | None,
    event: str,
    kind: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the audit log."""
    await db.execute(INSERT_EVENT, (user_id, event, kind, address, orjson.dumps(detail or {}).decode()))


async def list_events(db: Database, *, limit: int, before: int | None, user_id: int | None) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    rows = await db.fetch_all(SELECT_EVENTS, {"limit": limit, "before": before, "user_id": user_id})
    return [event_record(row) for row in rows]


def event_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """One audit entry (a row of EVENT_COLUMNS) as the contract shows it."""
    return {
        "id": row[0],
        "at": row[1],
        "user_id": row[2],
        "event": row[3],
        "kind": row[4],
        "address": row[5],
        "detail": orjson.loads(row[6]),
    }
