#!/usr/bin/env python
"""How much CPU one message-store transaction costs the app server.

    .venv/bin/python bench/store_append_bench.py [--source HEAD|worktree]

Calls ``SqlStore.append`` (what the writer task of an app server does for
each batch) in a loop on a fresh PostgreSQL database, for batches of 1, 4,
25 and 100 messages, and measures the CPU time of this process per
transaction and per message. For comparison it runs the same transaction
(lock the conversations, look for earlier copies, insert, move last_seq)
as four prepared statements straight on asyncpg, on a connection of its
own. On PostgreSQL ``SqlStore.append`` runs on asyncpg too (see
``switchboard.store.append``), so the difference is what remains between
them: checking a connection out of SQLAlchemy's pool and back in, through
its greenlet bridge, and the store's own bookkeeping. Use ``--source
worktree`` to measure uncommitted changes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl

LOCK = (
    "SELECT id, last_seq FROM conversations WHERE id = ANY($1::int[])"
    " ORDER BY id FOR NO KEY UPDATE"
)
KNOWN = (
    "SELECT conversation_id, client_id, seq FROM messages"
    " WHERE conversation_id = ANY($1::int[]) AND client_id = ANY($2::text[])"
)
INSERT = (
    "INSERT INTO messages (conversation_id, seq, client_id, sender, kind, body,"
    " data, created_at) SELECT * FROM unnest($1::int[], $2::int[], $3::text[],"
    " $4::text[], $5::text[], $6::text[], $7::json[], $8::float8[])"
)
ADVANCE = (
    "UPDATE conversations SET last_seq = v.seq FROM unnest($1::int[], $2::int[])"
    " AS v(id, seq) WHERE conversations.id = v.id"
)


async def raw_append(conn: asyncpg.Connection, batch: list[tuple[int, str]]) -> None:
    """The store's append transaction, hand-written on asyncpg."""
    ids = sorted({c for c, _ in batch})
    async with conn.transaction():
        last = {r["id"]: r["last_seq"] for r in await conn.fetch(LOCK, ids)}
        known = await conn.fetch(KNOWN, ids, [k for _, k in batch])
        assert not known
        cols: list[list[object]] = [[] for _ in range(8)]
        now = time.time()
        for conversation, client_id in batch:
            last[conversation] += 1
            row = (
                conversation,
                last[conversation],
                client_id,
                "customer:1",
                "text",
                "hello",
                None,
                now,
            )
            for col, value in zip(cols, row, strict=True):
                col.append(value)
        await conn.execute(INSERT, *cols)
        await conn.execute(ADVANCE, list(last), list(last.values()))


async def measure(
    label: str,
    batch: int,
    run: Callable[[list[tuple[int, str]]], Awaitable[None]],
    conversations: list[int],
    seconds: float,
) -> None:
    n = 0
    cpu, wall = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < seconds:
        await run(
            [
                (conversations[(n + j) % len(conversations)], uuid.uuid4().hex)
                for j in range(batch)
            ]
        )
        n += batch
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    transactions = n / batch
    print(
        f"{label:10s} batch {batch:3d}: {transactions / wall:5.0f} txn/s, "
        f"{1e6 * cpu / transactions:5.0f} us CPU/txn, "
        f"{1e6 * cpu / n:5.0f} us CPU/msg, {1e3 * wall / transactions:5.2f} ms/txn",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    from switchboard.store import NewMessage
    from switchboard.store.migrate import upgrade
    from switchboard.store.sql import SqlStore

    name = f"sbappend_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(f"{args.postgres}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.postgres}/{name}"
    try:
        await upgrade(url)
        store = SqlStore(url)
        await store.open()
        conversations = []
        for i in range(100):
            customer = await store.customer_by_external_id(f"c{i}", f"C {i}", "")
            conversations.append((await store.create_conversation(customer.id)).id)

        async def via_store(batch: list[tuple[int, str]]) -> None:
            await store.append(
                [
                    NewMessage(c, k, "customer:1", "text", "hello", None)
                    for c, k in batch
                ]
            )

        raw = await asyncpg.connect(url)

        async def via_asyncpg(batch: list[tuple[int, str]]) -> None:
            await raw_append(raw, batch)

        for size in (1, 4, 25, 100):
            await measure("SqlStore", size, via_store, conversations, args.seconds)
            await measure("asyncpg", size, via_asyncpg, conversations, args.seconds)
        await raw.close()
        await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="HEAD")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"
        ),
    )
    options = parser.parse_args()
    print(f"switchboard from {bl.use_source(options.source)['commit']}")
    uvloop.run(main(options))
