"""The ``sessionware`` command line: look at and manage sessions in any store.

Every command that takes ``--store`` also reads ``SESSIONWARE_STORE``. A bad
URL, an unreachable server or a missing extra is one line on stderr and a
non-zero exit. On a terminal output is a table; piped, it is plain
tab-separated text, and ``--json`` gives JSON Lines.
"""

import asyncio
import json
import sys
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO, TypeVar

from .agents import SessionManager
from .agents.keyspace import AgentKeys, check_session_id
from .agents.migrate import MigrationReport, migrate_agent_sessions
from .errors import InvalidValueError, MissingExtraError, SessionwareError
from .isolation import Isolation, make_isolation
from .logs import LogRestore, iter_log
from .store import ExpiringStore, LockingStore, LogStore, PurgeableStore, RawStore, ScannableStore
from .urls import open_store

try:
    import typer
except ImportError:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    typer = None  # type: ignore[assignment]

T = TypeVar("T")

DEFAULT_DEMO_STORE = "sqlite:///sessionware-demo.db"
EXPORT_FORMAT = "sessionware-export/1"


class CliError(SessionwareError):
    """A command was given something it cannot work with."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _kind(keys: AgentKeys, key: str) -> str:
    if keys.session_id_of(key) is not None:
        return "agent session"
    if key.startswith(keys.namespace + ":u:"):
        return "agent index"
    return "session"


class Output:
    """Writes rows as a rich table on a terminal, tab-separated text when piped, or JSON Lines."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.as_json = as_json
        self.rich = not as_json and self.out.isatty() and _has_rich()

    def rows(self, columns: Sequence[str], rows: Iterable[dict[str, Any]], title: str | None = None) -> None:
        if self.as_json:
            for row in rows:
                print(json.dumps(row, ensure_ascii=False, default=str), file=self.out)
            return
        if self.rich:
            from rich.console import Console
            from rich.table import Table

            table = Table(*columns, title=title)
            for row in rows:
                table.add_row(*(_cell(row.get(c)) for c in columns))
            Console(file=self.out).print(table)
            return
        print("\t".join(columns), file=self.out)
        for row in rows:
            print("\t".join(_cell(row.get(c)) for c in columns), file=self.out)


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
    return str(value)


# -- commands ------------------------------------------------------------------------------------


async def ls(url: str, user: str | None, limit: int | None, prefix: str, namespace: str, out: Output) -> None:
    """List sessions: every key of a store, or one user's agent sessions."""
    store = open_store(url)
    try:
        if user is not None:
            manager = SessionManager(store, namespace=namespace)
            page = await manager.list_sessions(user, limit=limit or 20)
            out.rows(
                ["id", "created", "updated", "messages", "tools"],
                (
                    {
                        "id": s.id,
                        "created": s.created_at.isoformat(timespec="seconds"),
                        "updated": s.updated_at.isoformat(timespec="seconds"),
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
            row: dict[str, Any] = {"key": key, "kind": _kind(keys, key)}
            raw = await store.get_raw(key)
            row["bytes"] = None if raw is None else len(raw)
            if isinstance(store, ExpiringStore):
                row["expires_in"] = await store.expires_in(key)
            rows.append(row)
        out.rows(["key", "kind", "bytes", "expires_in"], rows, title=url)
    finally:
        await store.close()


async def show(url: str, target: str, namespace: str, as_json: bool, out: TextIO) -> None:
    """Show a bot session as JSON, or an agent session as a transcript."""
    store = open_store(url)
    try:
        manager = SessionManager(store, namespace=namespace)
        session = None
        if _looks_like_session_id(target):
            session = await manager.get_session(target, history="all", tool_invocations="all")
        if session is not None:
            if as_json:
                print(session.model_dump_json(indent=2), file=out)
            else:
                _transcript(session, out)
            return
        value = await store.get(target)
        if value is None:
            raise CliError(f"no session {target!r} in {url}")
        print(json.dumps(value, indent=None if as_json else 2, ensure_ascii=False), file=out)
    finally:
        await store.close()


def _looks_like_session_id(target: str) -> bool:
    try:
        check_session_id(target)
    except SessionwareError:
        return False
    return True


def _transcript(session: Any, out: TextIO) -> None:
    print(f"session {session.id}  user {session.user_id}", file=out)
    print(
        f"created {session.created_at:%Y-%m-%d %H:%M:%S}  updated {session.updated_at:%Y-%m-%d %H:%M:%S}"
        f"  messages {session.message_count}  tool calls {session.tool_invocation_count}",
        file=out,
    )
    if session.metadata:
        print(f"metadata {json.dumps(_plain(session.metadata), ensure_ascii=False)}", file=out)
    for m in session.conversation_history:
        who = m.role if m.name is None else f"{m.role} ({m.name})"
        if m.tool_call_id is not None:
            who += f" [{m.tool_call_id}]"
        text = m.content or ""
        for call in m.tool_calls:
            args = json.dumps(_plain(call.arguments), ensure_ascii=False)
            text += f"{' ' if text else ''}→ {call.name}({args}) [{call.id}]"
        print(f"#{m.seq} {who}: {text}", file=out)
    if session.tool_invocations:
        print("tool invocations:", file=out)
        for t in session.tool_invocations:
            took = "" if t.duration is None else f" {t.duration * 1000:.0f} ms"
            args = json.dumps(_plain(t.arguments), ensure_ascii=False)
            print(f"  #{t.seq} {t.tool_name} {t.status}{took} {args}", file=out)


def _plain(value: Any) -> Any:
    if isinstance(value, dict) or (hasattr(value, "items") and not isinstance(value, (str, bytes))):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


async def rm(url: str, targets: Sequence[str], namespace: str, out: TextIO) -> int:
    """Delete sessions (an agent session with its history, tool log and index entry)."""
    store = open_store(url)
    removed = 0
    try:
        manager = SessionManager(store, namespace=namespace, isolation=_isolation(store))
        updates = _updates(store)
        for target in targets:
            if _looks_like_session_id(target) and await manager.get_session(target, history=0) is not None:
                await manager.delete_session(target)
            elif not await _delete(updates, target):
                print(f"no session {target!r}", file=sys.stderr)
                continue
            removed += 1
            print(f"removed {target}", file=out)
        return removed
    finally:
        await store.close()


async def export(url: str, prefix: str, namespace: str, out: TextIO) -> int:
    """Write every record (and every agent session's logs) as JSON Lines; return the number of lines."""
    store = open_store(url)
    try:
        if not isinstance(store, ScannableStore):
            raise CliError(f"{type(store).__name__} cannot list its keys")
        keys = AgentKeys(namespace)
        lines = 0

        def emit(obj: dict[str, Any]) -> None:
            nonlocal lines
            out.write(json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n")
            lines += 1

        emit({"format": EXPORT_FORMAT, "namespace": namespace})
        async for key in store.scan(prefix):
            value = await store.get(key)
            if value is None:
                continue
            ttl = await store.expires_in(key) if isinstance(store, ExpiringStore) else None
            emit({"key": key, "value": value, "ttl": ttl})
            session_id = keys.session_id_of(key)
            if session_id is not None and isinstance(store, LogStore):
                for log_key in (keys.history(session_id), keys.tools(session_id)):
                    async for seq, entry in iter_log(store, log_key):
                        emit({"log": log_key, "seq": seq, "value": entry})
        return lines
    finally:
        await store.close()


async def import_(url: str, source: TextIO, replace: bool, out: TextIO) -> tuple[int, int]:
    """Read an export back into the store at ``url``; return (records, log entries) written."""
    store = open_store(url)
    try:
        records, entries = await restore(store, source, replace=replace)
    finally:
        await store.close()
    print(f"imported {records} records and {entries} log entries", file=out)
    return records, entries


async def restore(store: Any, source: TextIO, *, replace: bool = False) -> tuple[int, int]:
    """Read an export back into ``store``; return (records, log entries) written. Sequence numbers are kept."""
    records = entries = 0
    try:
        header = json.loads(source.readline() or "{}")
    except json.JSONDecodeError:
        header = {}
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise CliError(f"not a sessionware export (expected a first line with format {EXPORT_FORMAT!r})")
    updates = _updates(store)
    log: LogRestore | None = None
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
            if not isinstance(item["log"], str) or type(item.get("seq")) is not int:
                raise CliError(f"line {number} has no log key and sequence number")
            if not isinstance(store, LogStore):
                raise CliError(f"{type(store).__name__} has no logs to import line {number} into")
            if log is None or item["log"] != log.key:
                if log is not None:
                    await log.finish()
                if await store.log_last_seq(item["log"]) and not replace:
                    raise CliError(f"log {item['log']!r} already exists; use --replace to overwrite it")
                log = LogRestore(store, item["log"])
            try:
                await log.add(item["seq"], item["value"])
            except InvalidValueError as exc:
                raise CliError(f"line {number}: {exc}") from exc
            entries += 1
            continue
        if log is not None:
            await log.finish()
            log = None
        key, value, ttl = item.get("key"), item.get("value"), item.get("ttl")
        if not isinstance(key, str) or not isinstance(value, dict):
            raise CliError(f"line {number} has no key and value")
        async with updates.open(key) as update:
            if update.existed and not replace:
                raise CliError(f"session {key!r} already exists; use --replace to overwrite it")
            await update.write(value, ttl=ttl)
        records += 1
    if log is not None:
        await log.finish()
    return records, entries


async def _delete(updates: Isolation, key: str) -> bool:
    async with updates.open(key) as update:
        return await update.delete()


def _updates(store: Any) -> Isolation:
    """The update unit the command line writes through: under a lease where the store has leases, so a
    running application's update of the same session finishes first and is never overwritten."""
    return make_isolation(store, _isolation(store))


def _isolation(store: Any) -> Literal["local", "distributed"]:
    return "distributed" if isinstance(store, LockingStore) and isinstance(store, RawStore) else "local"


async def purge_expired(url: str, out: TextIO) -> int:
    """Delete expired records and logs from a store that keeps them until purged."""
    store = open_store(url)
    try:
        if not isinstance(store, PurgeableStore):
            print(f"{type(store).__name__} expires records by itself; nothing to purge", file=out)
            return 0
        count = await store.purge_expired()
        print(f"purged {count} expired records", file=out)
        return count
    finally:
        await store.close()


async def migrate(url: str, namespace: str, dry_run: bool, out: TextIO) -> MigrationReport:
    """Move agent sessions stored by sessionware 0.1 to the 0.2 key layout."""
    store = open_store(url)
    try:
        report = await migrate_agent_sessions(store, namespace=namespace, dry_run=dry_run)
    finally:
        await store.close()
    verb = "would move" if dry_run else "moved"
    print(
        f"{verb} {report.sessions} agent sessions ({report.entries} log entries); "
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
    ) -> None:
        """Export sessions as JSON Lines, streaming (agent sessions with their history and tool calls)."""
        if output is None:
            _run(export(store, prefix, namespace, sys.stdout))
            return
        with output.open("w", encoding="ascii") as out:
            lines = _run(export(store, prefix, namespace, out))
        print(f"exported {lines} lines to {output}", file=sys.stderr)

    @app.command("import")
    def import_cmd(
        store: Store,
        source: Annotated[Path | None, typer.Argument(help="An export file (default stdin).")] = None,
        replace: Annotated[bool, typer.Option(help="Overwrite sessions that already exist.")] = False,
    ) -> None:
        """Import an export; sessions, histories and their sequence numbers come back exactly."""
        if source is None:
            _run(import_(store, sys.stdin, replace, sys.stdout))
            return
        with source.open(encoding="utf-8") as f:
            _run(import_(store, f, replace, sys.stdout))

    @app.command("migrate")
    def migrate_cmd(
        store: Store,
        namespace: Namespace = "agent",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would move.")] = False,
    ) -> None:
        """Move agent sessions written by sessionware 0.1 to this release's key layout (bot sessions need nothing)."""
        _run(migrate(store, namespace, dry_run, sys.stdout))

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
    try:
        _app()(args=argv, standalone_mode=True)
    except (SessionwareError, MissingExtraError, InvalidValueError) as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
