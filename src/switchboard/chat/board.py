"""The status board: every agent's status, load and presence.

Each app server keeps the whole board in memory. A change anywhere becomes
one event on the backplane's status channel; every server applies it here
and pushes the changed entries to its *own* agent connections, coalesced:
the first change arms a timer and everything that changes before it fires
goes out in one frame. The cost of a change therefore never depends on how
many addresses exist, and a burst of changes costs a handful of frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol import server as frames
from ..store import Agent

__all__ = ["StatusBoard"]


class StatusBoard:
    def __init__(self, interval: float, push: Callable[[str], None]) -> None:
        self._interval = interval
        self._push = push
        self._entries: dict[int, dict[str, Any]] = {}
        self._dirty: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None

    def load(self, agents: Iterable[Agent], connected: set[int]) -> None:
        """Replace the board (at start and after a backplane resync)."""
        entries = {a.id: _entry(a, a.id in connected) for a in agents}
        self._dirty |= {i for i, e in entries.items() if self._entries.get(i) != e}
        self._dirty |= self._entries.keys() - entries.keys()
        self._entries = entries
        self._arm()

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one status event; return True if it made room for a chat.

        Room appears when an agent becomes able to take a chat (connected,
        online and below capacity) or, already able, closes one.
        """
        agent_id = int(event["id"])
        entry = self._entries.setdefault(agent_id, {"id": agent_id})
        before = dict(entry)
        for key in ("name", "status", "capacity", "open_chats", "connected"):
            if key in event:
                entry[key] = event[key]
        if entry == before:
            return False

        self._dirty.add(agent_id)
        self._arm()
        if not _has_room(entry):
            return False
        fewer = int(entry["open_chats"]) < int(before.get("open_chats", 0))
        return fewer or not _has_room(before)

    def has_room(self, agent_id: int) -> bool:
        return _has_room(self._entries.get(agent_id, {}))

    def snapshot(self) -> str:
        return frames.board(self._entries.values(), full=True)

    def agent_ids(self) -> list[int]:
        return list(self._entries)

    def connected(self, agent_id: int) -> bool:
        return bool(self._entries.get(agent_id, {}).get("connected"))

    def entry(self, agent_id: int) -> dict[str, Any] | None:
        return self._entries.get(agent_id)

    def name(self, agent_id: int) -> str:
        return str(self._entries.get(agent_id, {}).get("name", ""))

    def _arm(self) -> None:
        if self._dirty and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._interval, self._flush)

    def _flush(self) -> None:
        self._timer = None
        changed = [
            self._entries.get(i, {"id": i, "removed": True})
            for i in sorted(self._dirty)
        ]
        self._dirty.clear()
        if changed:
            self._push(frames.board(changed, full=False))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _has_room(entry: dict[str, Any]) -> bool:
    return (
        bool(entry.get("connected"))
        and entry.get("status") == "online"
        and int(entry.get("open_chats", 0)) < int(entry.get("capacity", 0))
    )


def _entry(agent: Agent, connected: bool) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "status": agent.status.value,
        "capacity": agent.capacity,
        "open_chats": agent.open_chats,
        "connected": connected,
    }


def agent_event(agent: Agent) -> dict[str, Any]:
    """The status event that announces ``agent``'s stored state."""
    event = _entry(agent, False)
    del event["connected"]
    return event
