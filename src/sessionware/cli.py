"""The ``sessionware`` command line: look at and manage sessions in any store.

Every command that takes ``--store`` also reads ``SESSIONWARE_STORE``. A bad
URL, an unreachable server or a missing extra is one line on stderr and a
non-zero exit. On a terminal output is a table; piped, it is plain
tab-separated text, and ``--json`` gives JSON Lines. With ``SESSIONWARE_KEYS``
set, every command reads and writes the store through
:class:`~sessionware.encryption.EncryptedStore` with those keys.
"""

import asyncio
import base64
import io
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO, TypeVar

from .agents import SessionManager
from .agents.keyspace import AgentKeys, check_session_id
from .agents.logkeys import agent_log_keys, session_log_keys
from .agents.migrate import MigrationReport, migrate_agent_sessions
from .agents.records import SessionRecord
from .codec import DEFAULT_CODEC, Codec, JsonDict
from .errors import InvalidValueError, MissingExtraError, SessionwareError
from .isolation import Isolation, make_isolation
from .keys import check_key
from .logs import LogRestore, iter_log
from .store import (
    BaseSessionStore,
    ExpiringStore,
    IndexStore,
    LockingStore,
    LogStore,
    PurgeableStore,
    RawStore,
    ScannableStore,
    VersionedStore,
)
from .stores.memory import InMemorySessionStore
from .stores.sql.sqlite import SQLiteSessionStore
from .urls import open_store

try:
    import typer
except ImportError:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    typer = None  # type: ignore[assignment]

T = TypeVar("T")

DEFAULT_DEMO_STORE = "sqlite:///sessionware-demo.db"
SEALED = b"swe1:"
"""How a record sealed by :class:`~sessionware.encryption.EncryptedStore` starts."""
KEYS_VARIABLE = "SESSIONWARE_KEYS"
"""Encryption keys for every command (``<id>:<base64 key>,...``); see :mod:`sessionware.encryption`."""
EXPORT_FORMAT = "sessionware-export/1"
MAX_SEQ_SKIP = 10_000_000
"""The most sequence numbers an import fills in before a log's first entry or across a gap."""


class CliError(SessionwareError):
    """A command was given something it cannot work with."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# -- helpers the command line and the inspector share ---------------------------------------------

BOT, AGENT, AGENT_INDEX = "bot", "agent", "agent index"
KINDS = (BOT, AGENT)
"""The kinds of session a store holds: bot sessions (``session()``) and agent sessions (``SessionManager``)."""


def kind_of(keys: AgentKeys, key: str) -> str:
    """``agent`` for an agent session record, ``agent index`` for a per-user index entry, else ``bot``."""
    if keys.session_id_of(key) is not None:
        return AGENT
    if key.startswith(keys.namespace + ":u:"):
        return AGENT_INDEX
    return BOT


def open_writing(url: str) -> BaseSessionStore:
    """Open a store by URL, sealed with the keys in ``SESSIONWARE_KEYS`` when that is set (encryption at rest)."""
    return _sealed(open_store(url))


def _sealed(store: BaseSessionStore) -> BaseSessionStore:
    if not os.environ.get(KEYS_VARIABLE):
        return store
    from .encryption import EncryptedStore, KeyRing

    return EncryptedStore(store, KeyRing.from_env())


def open_reading(url: str, *, keys: bool = True) -> BaseSessionStore:
    """Open a store for a command that only reads (sealed as :func:`open_writing` does, unless not ``keys``).

    A SQLite file that does not exist is an error naming its path; one without
    sessionware's tables reads as an empty store; neither file nor tables are created.
    """
    store = open_store(url)
    if isinstance(store, SQLiteSessionStore):
        path = Path(store.path)
        if not path.is_file():
            raise CliError(f"no SQLite database at {str(path)!r}")
        if not _has_sessionware_tables(path, store.names.table):
            return InMemorySessionStore()
    return _sealed(store) if keys else store


async def rotate(url: str, prefix: str, namespace: str, out: TextIO) -> Any:
    """Re-seal every record of the store at ``url`` (under ``prefix``), and every log of its agent sessions, with
    the primary key of ``SESSIONWARE_KEYS``."""
    from .encryption import EncryptedStore, KeyRing, rotate_keys

    keys = KeyRing.from_env()
    store = EncryptedStore(open_store(url), keys)
    try:
        done = await rotate_keys(store, prefix=prefix, logs=agent_log_keys(store, namespace=namespace, prefix=prefix))
    finally:
        await store.close()
    print(
        f"re-sealed {counted(done.resealed, 'record')} with key {keys.primary!r}; "
        f"{done.current} already were, {done.raced} written meanwhile (so sealed with it), "
        f"{done.plaintext} plaintext sealed",
        file=out,
    )
    print(
        f"re-sealed {counted(done.entries_resealed, 'log entry', 'log entries')} of {counted(done.logs, 'log')}; "
        f"{done.entries_current} already were, {done.entries_raced} changed or removed meanwhile, "
        f"{done.entries_plaintext} plaintext sealed",
        file=out,
    )
    return done


def _has_sessionware_tables(path: Path, table: str) -> bool:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (f"{table}_meta",))
            return row.fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CliError(f"cannot read SQLite database {str(path)!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SessionRow:
    """What a listing shows of one stored key."""

    key: str
    kind: str
    owner: str | None = None
    size: int | None = None
    messages: int | None = None
    updated_at: float | None = None
    expires_in: float | None = None
    version: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The row with exact values: seconds as floats, times as ISO 8601 with microseconds."""
        return {
            "key": self.key,
            "kind": self.kind,
            "owner": self.owner,
            "bytes": self.size,
            "messages": self.messages,
            "updated": None if self.updated_at is None else _iso(self.updated_at),
            "expires_in": self.expires_in,
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


async def describe(store: Any, keys: AgentKeys, key: str) -> SessionRow | None:
    """A :class:`SessionRow` of ``key``: its kind, size, expiry, version and, for an agent session,
    its owner, message count and last activity; ``None`` if the key is gone."""
    kind = kind_of(keys, key)
    version: int | None = None
    if isinstance(store, VersionedStore):
        versioned = await store.get_versioned(key)
        if versioned is None:
            return None
        raw: bytes | None
        raw, version = versioned.data, versioned.version
    elif isinstance(store, RawStore):
        raw = await store.get_raw(key)
    else:
        value = await store.get(key)
        raw = None if value is None else json.dumps(value).encode()
    if raw is None:
        return None
    row = SessionRow(key, kind, size=len(raw), version=version)
    if isinstance(store, ExpiringStore):
        row = replace(row, expires_in=await store.expires_in(key))
    if kind == AGENT:
        try:
            record = SessionRecord.from_json(key, store.codec.decode(key, raw))
        except SessionwareError:
            return row
        row = replace(row, owner=record.user_id, messages=record.message_count, updated_at=record.updated_at)
    return row


async def browse(
    store: Any,
    namespace: str = "agent",
    *,
    prefix: str = "",
    kind: str | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[SessionRow], str | None]:
    """One page of sessions (bot and agent; never index entries) and the cursor of the next page, or ``None``.

    With ``owner``, the owner's agent sessions come from the per-user index, newest first, so the page
    costs the same in a store of a million sessions as in one of ten. Otherwise keys are scanned; the
    cursor counts the keys already passed, so the first page reads ``limit`` keys, not the store.
    """
    keys = AgentKeys(namespace)
    if kind is not None and kind not in KINDS:
        raise CliError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if owner is not None:
        if kind == BOT:
            return [], None
        manager = SessionManager(store, namespace=namespace)
        page = await manager.list_sessions(owner, limit=limit, cursor=cursor or None)
        rows = []
        for s in page.sessions:
            key = keys.record(s.id)
            if key.startswith(prefix) and (row := await describe(store, keys, key)) is not None:
                rows.append(row)
        return rows, page.next_cursor
    if not isinstance(store, ScannableStore):
        raise CliError(f"{type(store).__name__} cannot list its keys")
    scan_prefix = prefix
    if kind == AGENT:
        if keys.records_prefix.startswith(prefix):
            scan_prefix = keys.records_prefix
        elif not prefix.startswith(keys.records_prefix):
            return [], None
    skip = _skip_of(cursor)
    passed = 0
    rows = []
    scan = store.scan(scan_prefix)
    try:
        async for key in scan:
            passed += 1
            if passed <= skip:
                continue
            found = kind_of(keys, key)
            if found == AGENT_INDEX or (kind is not None and found != kind):
                continue
            if len(rows) == limit:
                return rows, f"k{passed - 1}"
            row = await describe(store, keys, key)
            if row is not None:
                rows.append(row)
    finally:
        await scan.aclose()  # type: ignore[attr-defined]
    return rows, None


def _skip_of(cursor: str | None) -> int:
    if not cursor:
        return 0
    if cursor[:1] == "k" and cursor[1:].isdigit():
        return int(cursor[1:])
    raise CliError(f"not a listing cursor: {cursor!r:.60}")


def human_duration(seconds: float | None) -> str:
    """``2761.9`` as ``46m 02s``, ``93784`` as ``1d 2h``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``1 session``, ``2 sessions``; ``plural`` where adding an s is wrong (``log entries``)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def human_time(timestamp: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


_CONTROL = {i: f"\\x{i:02x}" for i in [*range(32), 127]} | {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}
_CONTROL[ord("\\")] = "\\\\"


def escape_text(text: str) -> str:
    """``text`` with backslashes, control characters and lone surrogates escaped, so it is one safe cell."""
    escaped = text.translate(_CONTROL)
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


class Output:
    """Writes rows as a rich table on a terminal, tab-separated text when piped, or JSON Lines."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.as_json = as_json
        self.rich = not as_json and self.out.isatty() and _has_rich()

    def rows(
        self,
        columns: Sequence[str],
        rows: Iterable[dict[str, Any]],
        title: str | None = None,
        durations: Collection[str] = (),
    ) -> None:
        """Write ``rows``; on a table, the ``durations`` columns (seconds) are shown as ``46m 02s``."""
        if self.as_json:
            for row in rows:
                print(_json_line(row), file=self.out)
            return

        def cell(row: dict[str, Any], column: str) -> str:
            value = row.get(column)
            if column in durations and isinstance(value, (int, float)):
                return human_duration(value)
            return _cell(value)

        if self.rich:
            from rich.console import Console
            from rich.markup import escape
            from rich.table import Table

            table = Table(*columns, title=None if title is None else escape(escape_text(title)))
            for row in rows:
                table.add_row(*(escape(cell(row, c)) for c in columns))
            Console(file=self.out).print(table)
            return
        print("\t".join(columns), file=self.out)
        for row in rows:
            print("\t".join(cell(row, c) for c in columns), file=self.out)


def _json_line(value: Any, indent: int | None = None) -> str:
    """JSON text that any terminal or pipe can take: a lone surrogate comes out escaped, never as an error."""
    text = json.dumps(value, ensure_ascii=False, default=str, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, default=str, indent=indent)
    return text


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return escape_text(str(value))


# -- commands ------------------------------------------------------------------------------------


async def ls(url: str, user: str | None, limit: int | None, prefix: str, namespace: str, out: Output) -> None:
    """List sessions: every key of a store, or one user's agent sessions."""
    store = open_reading(url)
    try:
        if user is not None:
            manager = SessionManager(store, namespace=namespace)
            page = await manager.list_sessions(user, limit=limit or 20)
            spec = "microseconds" if out.as_json else "seconds"
            out.rows(
                ["id", "created", "updated", "messages", "tools"],
                (
                    {
                        "id": s.id,
                        "created": s.created_at.isoformat(timespec=spec),
                        "updated": s.updated_at.isoformat(timespec=spec),
                        "messages": s.message_count,
                        "tools": s.tool_invocation_count,
                    }
                    for s in page.sessions
                ),
                title=f"sessions of {user}",
            )
            return
        if not isinstance(store, ScannableStore):
            raise CliError(f"{type(store).__name__} cannot list its keys")
        keys = AgentKeys(namespace)
        rows: list[dict[str, Any]] = []
        async for key in store.scan(prefix, limit=limit):
            row = await describe(store, keys, key)
            if row is not None:
                rows.append(row.as_json())
        out.rows(["key", "kind", "bytes", "expires_in"], rows, title=url, durations={"expires_in"})
    finally:
        await store.close()


async def show(url: str, target: str, namespace: str, as_json: bool, out: TextIO) -> None:
    """Show a bot session as JSON, or an agent session as a transcript."""
    store = open_reading(url)
    try:
        manager = SessionManager(store, namespace=namespace)
        session = None
        if looks_like_session_id(target):
            session = await manager.get_session(target, history="all", tool_invocations="all")
        if session is not None:
            if as_json:
                print(_json_line(session.model_dump(mode="json"), indent=2), file=out)
            else:
                _transcript(session, out)
            return
        value = await store.get(target)
        if value is None:
            raise CliError(f"no session {escape_text(target)!r} in {url}")
        print(_json_line(value, indent=None if as_json else 2), file=out)
    finally:
        await store.close()


def looks_like_session_id(target: str) -> bool:
    """Whether ``target`` has the shape of an agent session id."""
    try:
        check_session_id(target)
    except SessionwareError:
        return False
    return True


def _transcript(session: Any, out: TextIO) -> None:
    print(f"session {session.id}  user {escape_text(session.user_id)}", file=out)
    print(
        f"created {session.created_at:%Y-%m-%d %H:%M:%S}  updated {session.updated_at:%Y-%m-%d %H:%M:%S}"
        f"  messages {session.message_count}  tool calls {session.tool_invocation_count}",
        file=out,
    )
    if session.metadata:
        print(f"metadata {_json_line(plain(session.metadata))}", file=out)
    for m in session.conversation_history:
        who = m.role if m.name is None else f"{m.role} ({m.name})"
        if m.tool_call_id is not None:
            who += f" [{m.tool_call_id}]"
        text = m.text
        for call in m.tool_calls:
            args = _json_line(plain(call.arguments))
            text += f"{' ' if text else ''}→ {call.name}({args}) [{call.id}]"
        print(f"#{m.seq} {who}: {text}", file=out)
    if session.tool_invocations:
        print("tool invocations:", file=out)
        for t in session.tool_invocations:
            took = "" if t.duration is None else f" {t.duration * 1000:.0f} ms"
            args = _json_line(plain(t.arguments))
            print(f"  #{t.seq} {t.tool_name} {t.status}{took} {args}", file=out)


def plain(value: Any) -> Any:
    """A frozen JSON value (FrozenMap, FrozenList) as plain dicts and lists."""
    if isinstance(value, dict) or (hasattr(value, "items") and not isinstance(value, (str, bytes))):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


async def rm(url: str, targets: Sequence[str], namespace: str, out: TextIO) -> int:
    """Delete sessions (an agent session with its history, tool log and index entry)."""
    store = open_reading(url)
    removed = 0
    try:
        for target in targets:
            if await delete_session(store, namespace, target):
                removed += 1
                print(f"removed {escape_text(target)}", file=out)
            else:
                print(f"no session {escape_text(target)!r}", file=sys.stderr)
        return removed
    finally:
        await store.close()


async def delete_session(store: Any, namespace: str, target: str) -> bool:
    """Delete a bot session by key, or an agent session (by id or record key) with its logs and index entry,
    under the session's isolation; return whether there was one."""
    session_id = AgentKeys(namespace).session_id_of(target) or (target if looks_like_session_id(target) else None)
    if session_id is not None:
        manager = SessionManager(store, namespace=namespace, isolation=_isolation(store))
        if await manager.get_session(session_id, history=0) is not None:
            await manager.delete_session(session_id)
            return True
    updates = updates_of(store)
    try:
        return await _delete(updates, target)
    finally:
        await updates.close()


async def export(url: str, prefix: str, namespace: str, out: TextIO, *, sealed: bool = False) -> tuple[int, int]:
    """Write every record (and every agent session's logs) as JSON Lines; return (sessions, log entries).

    ``sealed`` exports an encrypted store as it is stored, without keys: sealed records as base64
    (``"sealed"``), log entries as their envelopes; importing it writes them back as they were.
    """
    store = open_reading(url, keys=not sealed)
    try:
        if not isinstance(store, ScannableStore):
            raise CliError(f"{type(store).__name__} cannot list its keys")
        keys = AgentKeys(namespace)
        sessions = entries = 0
        exported: set[str] = set()

        def emit(obj: dict[str, Any]) -> None:
            out.write(json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n")

        emit({"format": EXPORT_FORMAT, "namespace": namespace, **({"sealed": True} if sealed else {})})
        async for key in store.scan(prefix):
            raw = await store.get_raw(key) if sealed and isinstance(store, RawStore) else None
            if raw is not None and raw.startswith(SEALED):
                line: dict[str, Any] = {"key": key, "sealed": base64.b64encode(raw).decode("ascii")}
            else:
                value = await store.get(key)
                if value is None:
                    continue
                line = {"key": key, "value": value}
            line["ttl"] = await store.expires_in(key) if isinstance(store, ExpiringStore) else None
            emit(line)
            sessions += kind_of(keys, key) != AGENT_INDEX
            session_id = keys.session_id_of(key)
            if session_id is not None and isinstance(store, LogStore):
                for log_key in session_log_keys(keys, key, session_id, line.get("value")):
                    if log_key in exported:
                        continue  # a log shared by forks goes once
                    exported.add(log_key)
                    async for seq, entry in iter_log(store, log_key):
                        emit({"log": log_key, "seq": seq, "value": entry})
                        entries += 1
        return sessions, entries
    finally:
        await store.close()


async def import_(
    url: str, source: TextIO, replace: bool, out: TextIO, *, continue_on_conflict: bool = False
) -> "ImportReport":
    """Read an export back into the store at ``url``."""
    store = open_writing(url)
    try:
        report = await restore(store, source, replace=replace, continue_on_conflict=continue_on_conflict)
    finally:
        await store.close()
    print(report.summary(), file=out)
    return report


@dataclass(slots=True)
class ImportReport:
    """What an import wrote and what it left out."""

    sessions: int = 0
    records: int = 0
    entries: int = 0
    conflicts: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the operator."""
        text = f"imported {counted(self.sessions, 'session')} ({counted(self.entries, 'log entry', 'log entries')})"
        if self.conflicts:
            text += f"; skipped {len(self.conflicts)} that already exist"
        if self.expired:
            text += f"; skipped {len(self.expired)} that expired before the export finished"
        return text


@dataclass(slots=True)
class _Plan:
    """An export read and checked: what to write, and which log belongs to which record."""

    records: dict[str, tuple[JsonDict | bytes, float | None]] = field(default_factory=dict)
    sealed: bool = False
    logs: dict[str, int] = field(default_factory=dict)
    log_owner: dict[str, str] = field(default_factory=dict)


async def restore(
    store: Any, source: TextIO, *, replace: bool = False, continue_on_conflict: bool = False
) -> ImportReport:
    """Read an export back into ``store``, keeping sequence numbers and expiries.

    The whole file is read and checked first (every line, every conflict); if
    anything is wrong nothing is written. Then records are written under the
    store's isolation and logs in batches. With ``continue_on_conflict`` a
    session that already exists is left as it is (with its logs) and the rest
    imported; with ``replace`` it is overwritten.
    """
    if not source.seekable():
        spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed below
        shutil.copyfileobj(source, spool)
        spool.seek(0)
        try:
            return await restore(store, spool, replace=replace, continue_on_conflict=continue_on_conflict)
        finally:
            spool.close()
    start = source.tell()
    keys, plan = _read_plan(store, source)
    if plan.sealed:
        store = _unsealed(store)  # sealed records and entries go back as they were stored
    report = ImportReport()
    skipped: set[str] = set()
    for key, (_, ttl) in plan.records.items():
        if ttl is not None and ttl <= 0:
            report.expired.append(key)
            skipped.add(key)
    if not replace:
        for key in plan.records:
            if key not in skipped and await _exists(store, key):
                report.conflicts.append(key)
        for log_key in plan.logs:
            owner = plan.log_owner.get(log_key)
            if (owner is None or owner not in skipped) and await store.log_last_seq(log_key):
                report.conflicts.append(owner or log_key)
        if report.conflicts and not continue_on_conflict:
            first = report.conflicts[0]
            count = len({k for k in report.conflicts if kind_of(keys, k) != AGENT_INDEX})
            raise CliError(
                f"{count} session(s) already exist, e.g. {escape_text(first)!r}; nothing was "
                "imported (use --replace to overwrite them or --continue-on-conflict to skip them)"
            )
        report.conflicts = sorted(set(report.conflicts))
        skipped.update(report.conflicts)
    updates = updates_of(store)
    rebuild: set[str] = set()
    try:
        for key, (value, ttl) in plan.records.items():
            if key in skipped:
                continue
            async with updates.open(key) as update:
                if isinstance(value, bytes):
                    await update.write_bytes(value, ttl=ttl)
                else:
                    await update.write(value, ttl=ttl)
            report.records += 1
            report.sessions += kind_of(keys, key) != AGENT_INDEX
            stale = keys.activity_of_entry(key)
            if stale is not None:
                rebuild.add(stale)
    finally:
        await updates.close()
    if isinstance(store, IndexStore):
        for index in sorted(rebuild):
            # The user's activity index does not know the imported sessions: rebuilt on its next listing.
            await store.index_delete(index)
    source.seek(start)
    source.readline()
    log: LogRestore | None = None
    log_skipped = False
    for line in source:
        if not line.strip() or '"log"' not in line:
            continue
        item = json.loads(line)
        if "log" not in item:
            continue
        if log is None or item["log"] != log.key:
            if log is not None:
                report.entries += await log.finish(ttl=_log_ttl(plan, log.key))
            owner = plan.log_owner.get(item["log"])
            log_skipped = item["log"] in skipped or (owner is not None and owner in skipped)
            log = LogRestore(store, item["log"])
        if not log_skipped:
            await log.add(item["seq"], item["value"])
    if log is not None:
        report.entries += await log.finish(ttl=_log_ttl(plan, log.key))
    return report


def _unsealed(store: Any) -> Any:
    """The store an :class:`~sessionware.encryption.EncryptedStore` wraps (``store`` itself if it is not one)."""
    from .encryption import EncryptedStore

    return store.inner if isinstance(store, EncryptedStore) else store


async def _exists(store: Any, key: str) -> bool:
    if isinstance(store, RawStore):
        return await store.get_raw(key) is not None
    return await store.get(key) is not None


def _log_ttl(plan: _Plan, log_key: str) -> float | None:
    owner = plan.log_owner.get(log_key)
    return None if owner is None or owner not in plan.records else plan.records[owner][1]


def _read_plan(store: Any, source: TextIO) -> tuple[AgentKeys, _Plan]:
    """Read every line of an export and check it; raise :class:`CliError` naming the first bad line."""
    try:
        header = json.loads(source.readline() or "{}")
    except json.JSONDecodeError:
        header = {}
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise CliError(f"not a sessionware export (expected a first line with format {EXPORT_FORMAT!r})")
    try:
        keys = AgentKeys(header.get("namespace", "agent"))
    except InvalidValueError as exc:
        raise CliError(f"line 1: {exc}") from exc
    plan = _Plan(sealed=header.get("sealed") is True)
    seen_logs: set[str] = set()
    current: str | None = None
    next_seq = 0
    for number, line in enumerate(source, start=2):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(item, dict):
            raise CliError(f"line {number} is not a JSON object")
        if "log" in item:
            log_key, seq, value = item["log"], item.get("seq"), item.get("value")
            if not isinstance(log_key, str) or not log_key:
                raise CliError(f"line {number} has no log key")
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
                raise CliError(f"line {number}: seq must be a positive integer, not {seq!r:.40}")
            if not isinstance(value, dict):
                raise CliError(f"line {number}: a log entry's value must be a JSON object")
            if not isinstance(store, LogStore):
                raise CliError(f"{type(store).__name__} has no logs to import line {number} into")
            if log_key != current:
                if log_key in seen_logs:
                    raise CliError(f"line {number}: the entries of log {escape_text(log_key)!r} are not together")
                seen_logs.add(log_key)
                current, next_seq = log_key, 1
                plan.logs[log_key] = seq
                session_id = _session_of_log(keys, log_key)
                if session_id is not None:
                    plan.log_owner[log_key] = keys.record(session_id)
            elif seq < next_seq:
                shown = escape_text(log_key)
                raise CliError(f"line {number}: log {shown!r} goes back from seq {next_seq - 1} to {seq}")
            if seq - next_seq > MAX_SEQ_SKIP:
                raise CliError(
                    f"line {number}: log {escape_text(log_key)!r} skips to seq {seq}; an import fills in the numbers "
                    f"it skips, at most {MAX_SEQ_SKIP:,} of them"
                )
            _check_encodes(store, value, number)
            next_seq = seq + 1
            continue
        current = None
        key, value, ttl = item.get("key"), item.get("value"), item.get("ttl")
        if plan.sealed and isinstance(item.get("sealed"), str):
            try:
                value = base64.b64decode(item["sealed"], validate=True)
            except ValueError:
                raise CliError(f"line {number}: 'sealed' is not base64") from None
        if not isinstance(key, str) or not isinstance(value, dict | bytes):
            raise CliError(f"line {number} has no key and value")
        try:
            check_key(key)
        except SessionwareError as exc:
            raise CliError(f"line {number}: {exc}") from exc
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl != ttl):
            raise CliError(f"line {number}: ttl must be a number of seconds or null, not {ttl!r:.40}")
        if key in plan.records:
            raise CliError(f"line {number}: session {escape_text(key)!r} appears twice")
        if isinstance(value, dict):
            _check_encodes(store, value, number)
        plan.records[key] = (value, None if ttl is None else float(ttl))
    return keys, plan


def _session_of_log(keys: AgentKeys, log_key: str) -> str | None:
    for tag in (":h:", ":t:"):
        head = keys.namespace + tag + "{"
        if log_key.startswith(head) and log_key.endswith("}"):
            candidate = log_key[len(head) : -1]
            if looks_like_session_id(candidate):
                return candidate
    return None


def _check_encodes(store: Any, value: JsonDict, number: int) -> None:
    try:
        check_storable(store, value)
    except CliError as exc:
        raise CliError(f"line {number}: {exc}") from exc


def check_storable(store: Any, value: JsonDict) -> None:
    """Raise :class:`CliError` saying why ``store`` would refuse ``value`` (not encodable, over its size limit)."""
    codec: Codec = getattr(store, "codec", DEFAULT_CODEC)
    max_size: int | None = getattr(store, "max_size", None)
    try:
        data = codec.encode(value)
    except (SessionwareError, ValueError, TypeError) as exc:
        raise CliError(str(exc)) from exc
    if max_size is not None and len(data) > max_size:
        raise CliError(f"the value is {len(data)} bytes, over the store's limit of {max_size}")


async def _delete(updates: Isolation, key: str) -> bool:
    async with updates.open(key) as update:
        return await update.delete()


def updates_of(store: Any) -> Isolation:
    """The update unit the command line writes through: under a lease where the store has leases, so a
    running application's update of the same session finishes first and is never overwritten."""
    return make_isolation(store, _isolation(store))


def _isolation(store: Any) -> Literal["local", "distributed"]:
    return "distributed" if isinstance(store, LockingStore) and isinstance(store, RawStore) else "local"


async def purge_expired(url: str, out: TextIO) -> int:
    """Delete expired records and logs from a store that keeps them until purged."""
    store = open_writing(url)
    try:
        if not isinstance(store, PurgeableStore):
            print(f"{type(store).__name__} expires records by itself; nothing to purge", file=out)
            return 0
        count = await store.purge_expired()
        print(f"purged {counted(count, 'expired record')}", file=out)
        return count
    finally:
        await store.close()


async def migrate(url: str, namespace: str, dry_run: bool, out: TextIO) -> MigrationReport:
    """Move agent sessions stored by sessionware 0.1 to the 0.2 key layout."""
    store = open_writing(url)
    try:
        report = await migrate_agent_sessions(store, namespace=namespace, dry_run=dry_run)
    finally:
        await store.close()
    verb = "would move" if dry_run else "moved"
    print(
        f"{verb} {counted(report.sessions, 'agent session')} ({counted(report.entries, 'log entry', 'log entries')}); "
        f"{report.finished} already moved, {report.expired} expired",
        file=out,
    )
    return report


# -- the typer application -------------------------------------------------------------------------


def _app() -> "typer.Typer":
    app = typer.Typer(
        help="Durable, concurrency-safe sessions for chat bots and AI agents.",
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    Store = Annotated[str, typer.Option("--store", "-s", envvar="SESSIONWARE_STORE", help="Store URL.")]
    Namespace = Annotated[str, typer.Option(help="Agent sessions' namespace.")]
    Json = Annotated[bool, typer.Option("--json", help="JSON output (JSON Lines for lists).")]

    @app.command()
    def demo(
        store: Annotated[
            str, typer.Option("--store", "-s", envvar="SESSIONWARE_STORE", help="Store URL.")
        ] = DEFAULT_DEMO_STORE,
        burst: Annotated[int, typer.Option(help="Concurrent 'like' taps in the demo.")] = 50,
    ) -> None:
        """Run a scripted multi-user conversation through the router and show what was stored."""
        from .demo import run_demo

        _run(run_demo(store, burst=burst))

    @app.command("ls")
    def ls_cmd(
        store: Store,
        user: Annotated[str | None, typer.Option(help="List this user's agent sessions.")] = None,
        limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
        prefix: Annotated[str, typer.Option(help="Only keys starting with this (literally).")] = "",
        namespace: Namespace = "agent",
        as_json: Json = False,
    ) -> None:
        """List the sessions in a store."""
        _run(ls(store, user, limit, prefix, namespace, Output(as_json)))

    @app.command("show")
    def show_cmd(
        target: Annotated[str, typer.Argument(help="A session key, or an agent session id.")],
        store: Store,
        namespace: Namespace = "agent",
        as_json: Json = False,
    ) -> None:
        """Show one session: JSON, or an agent conversation as a transcript with its tool calls."""
        _run(show(store, target, namespace, as_json, sys.stdout))

    @app.command("rm")
    def rm_cmd(
        targets: Annotated[list[str], typer.Argument(help="Session keys or agent session ids.")],
        store: Store,
        namespace: Namespace = "agent",
    ) -> None:
        """Delete sessions."""
        if _run(rm(store, targets, namespace, sys.stdout)) < len(targets):
            raise typer.Exit(1)

    @app.command("export")
    def export_cmd(
        store: Store,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
        prefix: Annotated[str, typer.Option(help="Only keys starting with this (literally).")] = "",
        namespace: Namespace = "agent",
        sealed: Annotated[
            bool, typer.Option("--sealed", help="An encrypted store as stored: ciphertext, no keys needed.")
        ] = False,
    ) -> None:
        """Export sessions as JSON Lines, streaming (agent sessions with their history and tool calls)."""
        if output is None:
            _run(export(store, prefix, namespace, sys.stdout, sealed=sealed))
            return
        try:
            out = output.open("w", encoding="ascii")
        except OSError as exc:
            raise CliError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        with out:
            sessions, entries = _run(export(store, prefix, namespace, out, sealed=sealed))
        logged = counted(entries, "log entry", "log entries")
        print(f"exported {counted(sessions, 'session')} ({logged}) to {output}", file=sys.stderr)

    @app.command("import")
    def import_cmd(
        store: Store,
        source: Annotated[Path | None, typer.Argument(help="An export file (default stdin).")] = None,
        replace: Annotated[bool, typer.Option(help="Overwrite sessions that already exist.")] = False,
        continue_on_conflict: Annotated[
            bool, typer.Option("--continue-on-conflict", help="Leave sessions that already exist; import the rest.")
        ] = False,
    ) -> None:
        """Import an export; sessions, histories, expiries and sequence numbers come back exactly.

        The whole file is checked first: if a line is bad, or a session exists (without --replace or
        --continue-on-conflict), nothing is written.
        """
        if source is None:
            _run(import_(store, sys.stdin, replace, sys.stdout, continue_on_conflict=continue_on_conflict))
            return
        try:
            f = source.open(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {str(source)!r}: {exc.strerror or exc}") from None
        with f:
            try:
                _run(import_(store, f, replace, sys.stdout, continue_on_conflict=continue_on_conflict))
            except UnicodeDecodeError as exc:
                raise CliError(f"{str(source)!r} is not UTF-8 text: {exc.reason}") from None

    @app.command("migrate")
    def migrate_cmd(
        store: Store,
        namespace: Namespace = "agent",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would move.")] = False,
    ) -> None:
        """Move agent sessions written by sessionware 0.1 to this release's key layout (bot sessions need nothing)."""
        _run(migrate(store, namespace, dry_run, sys.stdout))

    @app.command("inspect")
    def inspect_cmd(
        store: Store,
        host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")] = 0,
        write: Annotated[bool, typer.Option("--write", help="Allow deleting sessions and editing bot ones.")] = False,
        namespace: Namespace = "agent",
    ) -> None:
        """Serve a local web page to look at the store's sessions; prints the URL to open, with its access token."""
        from .inspect import serve

        try:
            _run(serve(store, host=host, port=port, write=write, namespace=namespace))
        except OSError as exc:
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

    @app.command("rotate-keys")
    def rotate_cmd(
        store: Store,
        prefix: Annotated[str, typer.Option(help="Only keys starting with this (literally).")] = "",
        namespace: Namespace = "agent",
    ) -> None:
        """Re-seal every record, and every agent session's history and tool log, with the primary key of
        SESSIONWARE_KEYS, in place (run again to resume)."""
        _run(rotate(store, prefix, namespace, sys.stdout))

    @app.command("purge-expired")
    def purge_cmd(store: Store) -> None:
        """Delete expired sessions and logs (SQL stores keep them until purged)."""
        _run(purge_expired(store, sys.stdout))

    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sessionware`` console script."""
    if typer is None:
        print("sessionware: the command line needs the cli extra: pip install 'sessionware[cli]'", file=sys.stderr)
        raise SystemExit(2)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        _app()(args=argv, standalone_mode=True)
    except (SessionwareError, MissingExtraError, InvalidValueError) as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
