"""The append transaction: store a batch of messages, numbered, once each.

It is the store's hottest transaction: the writer of every app server runs
one per batch, and at moderate rates a batch is one or two messages, so its
fixed cost is paid per message. It therefore comes in two versions that do
the same thing, each with as few round trips as its database allows:

* :func:`append_sql` on SQLAlchemy Core, for SQLite: lock, find earlier
  copies, insert, move last_seq. Its statements are built once, here, with
  expanding parameters, so that SQLAlchemy compiles each of them once.
* :func:`append_asyncpg` straight on asyncpg, for PostgreSQL: lock, find
  earlier copies, then insert and move last_seq in one statement. asyncpg
  prepares each statement once per connection.

Both lock the batch's conversations in id order before anything else (see
:mod:`switchboard.store.sql`) and look for earlier copies only then, in a
statement of their own: a snapshot taken after the lock sees every message
that the previous holder of the lock committed. Numbering is shared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from switchboard.errors import NotFound
from switchboard.store import NewMessage, StoredMessage
from switchboard.store.models import Base

__all__ = ["append_asyncpg", "append_sql", "message_record"]

CONVERSATIONS = Base.metadata.tables["conversations"]
MESSAGES = Base.metadata.tables["messages"]

Known = dict[tuple[int, str], StoredMessage]


# -- numbering ----------------------------------------------------------------


def _number(
    batch: Sequence[NewMessage], last_seq: dict[int, int], known: Known
) -> tuple[list[StoredMessage], list[StoredMessage]]:
    """Number the new messages of ``batch``, given what the database holds.

    Return every message of the batch in order, stored copies for those in
    ``known``, and the new ones alone, to insert. ``last_seq`` ends at the
    seq of each conversation's newest message. A repeat within the batch
    gets the record of its first copy, with ``new=False``.
    """
    now = time.time()
    stored: list[StoredMessage] = []
    new: list[StoredMessage] = []
    for message in batch:
        key = (message.conversation_id, message.client_id)
        earlier = known.get(key)
        if earlier is not None:
            # Repeats are rare, so only they pay for the copy.
            stored.append(replace(earlier, new=False) if earlier.new else earlier)
            continue

        last_seq[message.conversation_id] += 1
        record = StoredMessage(
            conversation_id=message.conversation_id,
            seq=last_seq[message.conversation_id],
            client_id=message.client_id,
            sender=message.sender,
            kind=message.kind,
            body=message.body,
            data=message.data,
            created_at=now,
        )
        known[key] = record
        stored.append(record)
        new.append(record)
    return stored, new


def _check_found(ids: Iterable[int], last_seq: dict[int, int]) -> None:
    missing = set(ids) - last_seq.keys()
    if missing:
        raise NotFound(f"no conversation {min(missing)}")


# -- on SQLAlchemy --------------------------------------------------------------

_LOCK = (
    select(CONVERSATIONS.c.id, CONVERSATIONS.c.last_seq)
    .where(CONVERSATIONS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(CONVERSATIONS.c.id)
    .with_for_update(key_share=True)
)

# Matching ids and client ids separately may find a few pairs that aren't
# in the batch; the dictionary lookup of _number ignores them. SQLite
# probes the index for each combination of the two lists, which is cheap
# for the embedded server's small batches; a row-value IN of exact pairs
# would be a scan of the whole table there.
_KNOWN = select(MESSAGES).where(
    MESSAGES.c.conversation_id.in_(bindparam("ids", expanding=True)),
    MESSAGES.c.client_id.in_(bindparam("client_ids", expanding=True)),
)

_INSERT = insert(MESSAGES)

_ADVANCE = (
    update(CONVERSATIONS)
    .where(CONVERSATIONS.c.id == bindparam("b_id"))
    .values(last_seq=bindparam("b_seq"))
)


async def append_sql(
    conn: AsyncConnection, batch: Sequence[NewMessage]
) -> list[StoredMessage]:
    """The append transaction on SQLAlchemy; ``batch`` is not empty."""
    ids = sorted({message.conversation_id for message in batch})
    rows = await conn.execute(_LOCK, {"ids": ids})
    last_seq: dict[int, int] = {row.id: row.last_seq for row in rows}
    _check_found(ids, last_seq)

    client_ids = sorted({message.client_id for message in batch})
    rows = await conn.execute(_KNOWN, {"ids": ids, "client_ids": client_ids})
    known = {
        (row.conversation_id, row.client_id): message_record(row, new=False)
        for row in rows
    }

    stored, new = _number(batch, last_seq, known)
    if not new:
        return stored

    await conn.execute(_INSERT, [_values(record) for record in new])
    changed = sorted({record.conversation_id for record in new})
    params = [{"b_id": id, "b_seq": last_seq[id]} for id in changed]
    await conn.execute(_ADVANCE, params)
    return stored


# -- on asyncpg -----------------------------------------------------------------

# JSON travels as text and is cast by the server, so that these statements
# do not depend on the codecs SQLAlchemy installs on its connections.

_PG_LOCK = """
SELECT id, last_seq FROM conversations WHERE id = ANY($1::int[])
ORDER BY id FOR NO KEY UPDATE
"""

# Exact (conversation, client id) pairs, one index probe each. Two ANY()
# lists would match their cross product, and the planner often answers
# that with a scan of the whole table, which grows with every message.
_PG_KNOWN = """
SELECT m.conversation_id, m.seq, m.client_id, m.sender, m.kind, m.body,
       m.data::text, m.created_at
FROM unnest($1::int[], $2::text[]) AS k(conversation_id, client_id)
JOIN messages AS m
  ON m.conversation_id = k.conversation_id AND m.client_id = k.client_id
"""

# The INSERT runs although nothing reads its CTE: PostgreSQL runs every
# data-modifying statement of a WITH to completion.
_PG_WRITE = """
WITH inserted AS (
    INSERT INTO messages
        (conversation_id, seq, client_id, sender, kind, body, data, created_at)
    SELECT conversation_id, seq, client_id, sender, kind, body, data::json,
           created_at
    FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::text[],
                $6::text[], $7::text[], $8::float8[])
        AS v(conversation_id, seq, client_id, sender, kind, body, data,
             created_at)
)
UPDATE conversations SET last_seq = v.last_seq
FROM unnest($9::int[], $10::int[]) AS v(id, last_seq)
WHERE conversations.id = v.id
"""


async def append_asyncpg(raw: Any, batch: Sequence[NewMessage]) -> list[StoredMessage]:
    """The append transaction on an ``asyncpg.Connection``, in a transaction.

    ``batch`` is not empty.
    """
    ids = sorted({message.conversation_id for message in batch})
    rows = await raw.fetch(_PG_LOCK, ids)
    last_seq: dict[int, int] = {row[0]: row[1] for row in rows}
    _check_found(ids, last_seq)

    pairs = sorted({(m.conversation_id, m.client_id) for m in batch})
    rows = await raw.fetch(_PG_KNOWN, [p[0] for p in pairs], [p[1] for p in pairs])
    known = {(row[0], row[2]): _stored_pg(row) for row in rows}

    stored, new = _number(batch, last_seq, known)
    if not new:
        return stored

    # One array per column, as unnest() takes them.
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [])
    for record in new:
        data = None if record.data is None else json.dumps(record.data)
        values = (
            record.conversation_id,
            record.seq,
            record.client_id,
            record.sender,
            record.kind,
            record.body,
            data,
            record.created_at,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    changed = sorted({record.conversation_id for record in new})
    advanced = [last_seq[id] for id in changed]
    await raw.execute(_PG_WRITE, *columns, changed, advanced)
    return stored


# -- rows to records ----------------------------------------------------------


def message_record(row: Any, new: bool = True) -> StoredMessage:
    """The record of a ``messages`` row, from either driver."""
    return StoredMessage(
        conversation_id=row.conversation_id,
        seq=row.seq,
        client_id=row.client_id,
        sender=row.sender,
        kind=row.kind,
        body=row.body,
        data=row.data,
        created_at=row.created_at,
        new=new,
    )


def _stored_pg(row: Any) -> StoredMessage:
    # The columns of _PG_KNOWN, in order.
    return StoredMessage(
        conversation_id=row[0],
        seq=row[1],
        client_id=row[2],
        sender=row[3],
        kind=row[4],
        body=row[5],
        data=None if row[6] is None else json.loads(row[6]),
        created_at=row[7],
        new=False,
    )


def _values(message: StoredMessage) -> dict[str, Any]:
    return {
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "client_id": message.client_id,
        "sender": message.sender,
        "kind": message.kind,
        "body": message.body,
        "data": message.data,
        "created_at": message.created_at,
    }
