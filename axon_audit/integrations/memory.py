"""A small in-memory `MemorySystem` (store / recall / forget / compact / export /
import_data) whose every operation is audited, and its `MemoryConfig`.

It is the seed's "memory system with audit logging": enough of one to run the
seed's examples and the demo, and the reference for auditing your own system
with `audited` and `audit_note` (see `integrations.hooks`).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.integrations.hooks import audit_note, audited
from axon_audit.integrations.memory_audit import AuditLogExport, attribution
from axon_audit.io.location import resolve
from axon_audit.io.sealed import check_export_target
from axon_audit.model.enums import EventStatus, OperationType

__all__ = ["MemoryConfig", "MemoryEntry", "MemorySystem"]


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of a `MemorySystem`.

    Args:
        max_entries: entries held at most; a `store` beyond it raises (None: no bound).
        default_k: results of `recall` when `k` is not given.
        compact_below: `compact` removes entries whose importance is below this
            (and exact duplicates of the same user's text, keeping the most important).

    Example:
        >>> from axon_audit import MemoryConfig
        >>> MemoryConfig(max_entries=1000, default_k=3).default_k
        3
        >>> MemoryConfig(default_k=0)
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: default_k must be an int >= 1, got 0
    """

    max_entries: int | None = None
    default_k: int = 5
    compact_below: float = 0.0

    def __post_init__(self) -> None:
        if self.max_entries is not None and (
            isinstance(self.max_entries, bool) or not isinstance(self.max_entries, int) or self.max_entries < 1
        ):
            raise AuditValueError(f"max_entries must be an int >= 1 or None, got {self.max_entries!r}")
        if isinstance(self.default_k, bool) or not isinstance(self.default_k, int) or self.default_k < 1:
            raise AuditValueError(f"default_k must be an int >= 1, got {self.default_k!r}")
        if isinstance(self.compact_below, bool) or not isinstance(self.compact_below, (int, float)) \
                or not 0.0 <= self.compact_below <= 1.0:
            raise AuditValueError(f"compact_below must be a number in [0, 1], got {self.compact_below!r}")


@dataclass
class MemoryEntry:
    """One stored memory: text, importance in [0, 1], tags, and who stored it when.

    Example:
        >>> from axon_audit import MemoryEntry
        >>> MemoryEntry("entry_1", "likes tea", importance=0.8, tags=["pref"]).to_dict()["tags"]
        ['pref']
    """

    entry_id: str
    content: str
    importance: float = 0.5
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _importance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise AuditValueError(f"importance must be a number in [0, 1], got {value!r}")
    return float(value)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise AuditTypeError(f"tags must be a list of str, got {type(value).__name__}")
    tags = list(value)
    for i, t in enumerate(tags):
        if not isinstance(t, str):
            raise AuditTypeError(f"tags[{i}] must be a str, got {type(t).__name__}")
    return tags


class MemorySystem(AuditLogExport):
    """An in-memory memory system whose operations are audited when it has an
    `audit_logger`: one event per `store`, `recall`, `forget`, `compact`,
    `export` and `import_data` call (an import of N entries is one event), with
    the user, session, entry ids, duration and a summary of the call, and
    FAILURE plus the error message when a call raises.

    Every operation takes `user_id` and `session_id` (or inherits them from
    `audit_context`); `store` also reads them from its metadata, as Axon's does.
    `export_audit_log` returns (and can write) the audit trail, as Axon's.

    Example:
        >>> import asyncio
        >>> from axon_audit import AuditLogger, MemorySystem
        >>> audit_logger = AuditLogger(max_events=10000)
        >>> memory = MemorySystem(audit_logger=audit_logger)
        >>> async def main():
        ...     entry_id = await memory.store("Important data", user_id="user_123", importance=0.8)
        ...     hits = await memory.recall("important", user_id="user_123")
        ...     await memory.forget(entry_id, user_id="user_123")
        ...     return [h.content for h in hits]
        >>> asyncio.run(main())
        ['Important data']
        >>> [e.operation.value for e in audit_logger.query_events(user_id="user_123")]
        ['FORGET', 'RECALL', 'STORE']
    """

    def __init__(self, config: MemoryConfig | None = None, audit_logger: Any = None) -> None:
        if config is None:
            config = MemoryConfig()
        if not isinstance(config, MemoryConfig):
            raise AuditTypeError(f"config must be a MemoryConfig or None, got {type(config).__name__}")
        if audit_logger is not None and not hasattr(audit_logger, "log"):
            raise AuditTypeError(f"audit_logger must be an AuditLogger or None, got {type(audit_logger).__name__}")
        self.config = config
        self.audit_logger = audit_logger
        self._entries: dict[str, MemoryEntry] = {}
        self._node = secrets.token_hex(3)
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, entry_id: str) -> MemoryEntry | None:
        """The entry with this id, or None (not audited: an internal read).

        Example:
            >>> from axon_audit import MemorySystem
            >>> MemorySystem().get("entry_1") is None
            True
        """
        return self._entries.get(entry_id)

    def _new_id(self) -> str:
        return f"entry_{self._node}{next(self._ids):08d}"

    def _add(self, entry: MemoryEntry) -> None:
        limit = self.config.max_entries
        if limit is not None and entry.entry_id not in self._entries and len(self._entries) >= limit:
            raise AuditValueError(f"memory is full: max_entries={limit} reached")
        self._entries[entry.entry_id] = entry

    async def store(
        self,
        content: str,
        metadata: Mapping[str, Any] | None = None,
        importance: float = 0.5,
        tags: Sequence[str] | None = None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Store `content`; return the new entry's id. Positional order as Axon's
        (content, metadata, importance, tags); the user and session are the
        arguments, else `metadata["user_id"]`/`["session_id"]` as in Axon, else
        those of `audit_context`.

        Example:
            >>> import asyncio
            >>> from axon_audit import AuditLogger, MemorySystem
            >>> memory = MemorySystem(audit_logger=AuditLogger())
            >>> asyncio.run(memory.store("data", {"user_id": "user_123"})).startswith("entry_")
            True
            >>> memory.audit_logger.query_events()[0].user_id
            'user_123'
        """
        user_id, session_id = attribution(user_id, session_id, metadata)
        return await self._store(content, importance=importance, tags=tags, metadata=metadata,
                                 user_id=user_id, session_id=session_id)

    @audited(OperationType.STORE)
    async def _store(self, content: str, *, importance: float, tags: Sequence[str] | None,
                     metadata: Mapping[str, Any] | None, user_id: str | None, session_id: str | None) -> str:
        if not isinstance(content, str) or not content:
            raise AuditValueError(f"content must be a non-empty str, got {content!r:.40}")
        entry = MemoryEntry(self._new_id(), content, _importance(importance), _tags(tags),
                            dict(metadata or {}), user_id)
        self._add(entry)
        audit_note(entry_ids=[entry.entry_id])
        return entry.entry_id

    @audited(OperationType.RECALL)
    async def recall(
        self,
        query: str,
        k: int | None = None,
        *,
        tags: Sequence[str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> list[MemoryEntry]:
        """Up to `k` entries whose text contains `query` (ignoring case) and that carry
        every tag in `tags`, most important first (then newest).

        Example:
            >>> import asyncio
            >>> from axon_audit import MemorySystem
            >>> memory = MemorySystem()
            >>> async def main():
            ...     await memory.store("tea at noon", importance=0.2)
            ...     await memory.store("Tea preference: green", importance=0.9)
            ...     return [e.content for e in await memory.recall("TEA", k=1)]
            >>> asyncio.run(main())
            ['Tea preference: green']
        """
        if not isinstance(query, str):
            raise AuditTypeError(f"query must be a str, got {type(query).__name__}")
        if k is None:
            k = self.config.default_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise AuditValueError(f"k must be an int >= 1, got {k!r}")
        wanted = set(_tags(tags))
        needle = query.casefold()
        # A plain scan: this reference system is small; a real one has an index.
        hits = [e for e in self._entries.values()
                if needle in e.content.casefold() and wanted.issubset(e.tags)]
        hits.sort(key=lambda e: (e.importance, e.created_at), reverse=True)
        hits = hits[:k]
        audit_note(entry_ids=[e.entry_id for e in hits], results=len(hits))
        return hits

    @audited(OperationType.FORGET)
    async def forget(
        self,
        entry_ids: str | Sequence[str],
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Delete the given entries; return how many existed. Ids that do not exist
        make the event PARTIAL (with `not_found` in its metadata), not an error:
        forgetting is idempotent.

        Example:
            >>> import asyncio
            >>> from axon_audit import MemorySystem
            >>> memory = MemorySystem()
            >>> async def main():
            ...     entry_id = await memory.store("x")
            ...     return await memory.forget([entry_id, "entry_missing"])
            >>> asyncio.run(main())
            1
        """
        ids = [entry_ids] if isinstance(entry_ids, str) else list(entry_ids)
        for i, e in enumerate(ids):
            if not isinstance(e, str):
                raise AuditTypeError(f"entry_ids[{i}] must be a str, got {type(e).__name__}")
        removed = sum(self._entries.pop(e, None) is not None for e in dict.fromkeys(ids))
        missing = len(dict.fromkeys(ids)) - removed
        audit_note(forgotten=removed, not_found=missing,
                   status=EventStatus.PARTIAL if missing else None,
                   error_message=f"{missing} of {removed + missing} entries not found" if missing else None)
        return removed

    @audited(OperationType.COMPACT)
    async def compact(self, *, user_id: str | None = None, session_id: str | None = None) -> int:
        """Remove entries below `config.compact_below` importance and exact duplicates
        (same user, same text: the most important copy stays); return how many went.

        Example:
            >>> import asyncio
            >>> from axon_audit import MemorySystem
            >>> memory = MemorySystem()
            >>> async def main():
            ...     for importance in (0.1, 0.9):
            ...         await memory.store("same", importance=importance)
            ...     return await memory.compact(), len(memory)
            >>> asyncio.run(main())
            (1, 1)
        """
        best: dict[tuple, MemoryEntry] = {}
        drop: list[str] = []
        for e in self._entries.values():
            if e.importance < self.config.compact_below:
                drop.append(e.entry_id)
                continue
            key = (e.user_id, e.content)
            kept = best.get(key)
            if kept is None:
                best[key] = e
            elif (e.importance, e.created_at) > (kept.importance, kept.created_at):
                drop.append(kept.entry_id)
                best[key] = e
            else:
                drop.append(e.entry_id)
        for entry_id in drop:
            del self._entries[entry_id]
        audit_note(entry_ids=drop, removed=len(drop), remaining=len(self._entries))
        return len(drop)

    @audited(OperationType.EXPORT)
    async def export(
        self,
        path: str | Path | None = None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every entry as a dict (oldest first); with `path`, also written there as JSON.

        Example:
            >>> import asyncio
            >>> from axon_audit import MemorySystem
            >>> memory = MemorySystem()
            >>> async def main():
            ...     await memory.store("x", tags=["t"])
            ...     return await memory.export()
            >>> [(d["content"], d["tags"]) for d in asyncio.run(main())]
            [('x', ['t'])]
        """
        if path is not None and not isinstance(path, (str, Path)):
            raise AuditTypeError(f"path must be a str or Path or None, got {type(path).__name__}")
        data = [e.to_dict() for e in self._entries.values()]
        if path is not None:
            # Never over sealed evidence (an export folder's manifest, its files) nor the logger's WAL.
            own = [getattr(self.audit_logger, "auto_export_path", None),
                   getattr(getattr(self.audit_logger, "_config", None), "wal_path", None)]
            check_export_target(resolve(str(path)), force=True, own=[resolve(o) for o in own if o is not None])
            Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        audit_note(entries=len(data), path=None if path is None else str(path))
        return data

    @audited(OperationType.IMPORT)
    async def import_data(
        self,
        entries: Iterable[Mapping[str, Any] | MemoryEntry | str],
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Add many entries in one call and one audit event (the seed's batching tip):
        texts, dicts with `content` (and optional `entry_id`, `importance`, `tags`,
        `metadata`), or `MemoryEntry`s. All are checked before any is added.

        Example:
            >>> import asyncio
            >>> from axon_audit import AuditLogger, MemorySystem
            >>> audit = AuditLogger()
            >>> memory = MemorySystem(audit_logger=audit)
            >>> asyncio.run(memory.import_data(["a", {"content": "b", "importance": 0.9}]))
            2
            >>> audit.event_count, len(audit.query_events()[0].entry_ids)
            (1, 2)
        """
        if isinstance(entries, (str, bytes, Mapping)):
            raise AuditTypeError(f"entries must be a list of entries, got {type(entries).__name__}")
        new: list[MemoryEntry] = []
        for i, item in enumerate(entries):
            if isinstance(item, MemoryEntry):
                new.append(item)
                continue
            if isinstance(item, str):
                item = {"content": item}
            if not isinstance(item, Mapping):
                raise AuditTypeError(f"entries[{i}] must be a str, dict or MemoryEntry, got {type(item).__name__}")
            content = item.get("content")
            if not isinstance(content, str) or not content:
                raise AuditValueError(f"entries[{i}]['content'] must be a non-empty str")
            entry_id = item.get("entry_id") or self._new_id()
            if not isinstance(entry_id, str):
                raise AuditTypeError(f"entries[{i}]['entry_id'] must be a str, got {type(entry_id).__name__}")
            new.append(MemoryEntry(
                entry_id, content, _importance(item.get("importance", 0.5)), _tags(item.get("tags")),
                dict(item.get("metadata") or {}), item.get("user_id", user_id),
                item.get("created_at") or time.time(),
            ))
        limit = self.config.max_entries
        if limit is not None:
            after = len(self._entries.keys() | {e.entry_id for e in new})
            if after > limit:
                raise AuditValueError(f"memory is full: importing {len(new)} entries exceeds max_entries={limit}")
        for e in new:
            self._entries[e.entry_id] = e
        audit_note(entry_ids=[e.entry_id for e in new], imported=len(new))
        return len(new)

    def __repr__(self) -> str:
        return f"MemorySystem(entries={len(self._entries)}, audited={self.audit_logger is not None})"
