"""The status board: every agent's status, load and presence.

Each app server keeps the whole board in memory. A change anywhere becomes
one event on the backplane's status channel; every server applies it here
and pushes the changed entries to its *own* agent connections, coalesced:
the first change arms a timer and everything that changes before it fires
goes out in one frame. The cost of a change therefore never depends on how
many addresses exist, and a burst of changes costs a handful of frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..protocol import server as frames
from ..store import Agent
from .coalescer import Coalescer

__all__ = ["StatusBoard"]


class StatusBoard:
    """One server's copy of every agent's entry, pushed to its agents.

    Entries are plain dicts in the shape of the ``board`` frame, so a
    changed entry goes out as it is. ``push`` sends a frame to every agent
    connection of this server; it is called at most once per ``interval``.
    """

    def __init__(self, interval: float, push: Callable[[str], None]) -> None:
        self._push = push
        self._entries: dict[int, dict[str, Any]] = {}
        # Agents whose entry changed since the last frame went out.
        self._dirty: set[int] = set()
        self._flusher = Coalescer(interval, self._flush)

    def load(self, agents: Iterable[Agent], connected: set[int]) -> None:
        """Replace the board (at start and after a backplane resync)."""
        entries = {a.id: _entry(a, a.id in connected) for a in agents}

        # Only what differs goes out: a reload that finds the board right
        # costs no frame at all. Agents gone from the record are removed.
        self._dirty |= {i for i, e in entries.items() if self._entries.get(i) != e}
        self._dirty |= self._entries.keys() - entries.keys()
        self._entries = entries
        if self._dirty:
            self._flusher.request()

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one status event; return True if it made room for a chat.

        Room appears when an agent becomes able to take a chat (connected,
        online and below capacity) or, already able, closes one.
        """
        # Events carry only what changed (a presence event has no status),
        # so they are merged into the entry, never replace it.
        agent_id = int(event["id"])
        entry = self._entries.setdefault(agent_id, {"id": agent_id})
        before = dict(entry)
        for key in ("name", "status", "capacity", "open_chats", "connected"):
            if key in event:
                entry[key] = event[key]

        # Every event comes back from the status channel to the server that
        # published it; the second time it changes nothing and costs nothing.
        if entry == before:
            return False
        self._dirty.add(agent_id)
        self._flusher.request()

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

    def close(self) -> None:
        self._flusher.close()

    def _flush(self) -> None:
        # An agent missing from the entries was removed by a reload; the
        # consoles are told so instead of keeping a stale row.
        changed = [
            self._entries.get(i, {"id": i, "removed": True})
            for i in sorted(self._dirty)
        ]
        self._dirty.clear()
        if changed:
            self._push(frames.board(changed, full=False))


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
