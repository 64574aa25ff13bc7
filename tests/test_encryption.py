"""Encryption at rest: the contract suite through EncryptedStore on every backend, nothing readable at rest,
ciphertexts bound to their key, wrong keys refused without losing data, no extra writes, key rotation."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from typing import Any

import pytest

from sessionware import (
    BaseSessionStore,
    Context,
    EncryptedStore,
    EncryptionError,
    InvalidValueError,
    KeyRing,
    Router,
    SessionManager,
    rotate_keys,
    session,
)
from sessionware.testing import Advance, StoreContract

from .helpers import Calls, message

KEY_A = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY_B = base64.urlsafe_b64encode(bytes(range(32, 64))).decode()
SECRET = "the launch code is 0000"


def ring(**keys: str) -> KeyRing:
    return KeyRing(keys or {"k1": KEY_A})


class TestContractThroughEncryption(StoreContract):
    """The shipped contract suite over EncryptedStore wrapping each backend (conftest's ``store``)."""

    @pytest.fixture
    def store(self, store: BaseSessionStore) -> EncryptedStore:
        return EncryptedStore(store, ring())

    @pytest.fixture
    def advance(self, advance: Advance) -> Advance:
        return advance


async def raw_bytes_everywhere(inner: Any, keys: list[str], logs: list[str]) -> bytes:
    found = b""
    for key in keys:
        found += await inner.get_raw(key) or b""
    for log in logs:
        for entry in await inner.log_read(log):
            found += repr(entry.value).encode()
    return found


async def test_nothing_is_readable_at_rest(store: BaseSessionStore) -> None:
    sealed = EncryptedStore(store, ring())
    manager = SessionManager(sealed)
    chat = await manager.create_session("ada", metadata={"note": SECRET})
    await manager.add_message(chat.id, "user", SECRET)
    await manager.track_tool_invocation(chat.id, "lookup", arguments={"q": SECRET}, call_id="c1")
    router = Router()
    router.use(session(sealed))

    @router.command("note")
    async def note(ctx: Context) -> None:
        ctx.session["note"] = SECRET

    await router.handle(message(1, "/note"))
    keys = [key async for key in store.scan()]  # type: ignore[attr-defined]
    at_rest = await raw_bytes_everywhere(store, keys, [manager.keys.history(chat.id), manager.keys.tools(chat.id)])
    assert b"launch code" not in at_rest
    assert b"swe1:k1:" in at_rest
    assert await sealed.get("1") == {"note": SECRET}
    assert (await manager.history(chat.id))[0].text == SECRET
    got = await manager.get_session(chat.id)
    assert got is not None
    assert got.metadata["note"] == SECRET


async def test_a_ciphertext_moved_to_another_key_does_not_open(store: BaseSessionStore) -> None:
    sealed = EncryptedStore(store, ring())
    inner: Any = store
    await sealed.set("alice", {"role": "admin"})
    await sealed.set("bob", {"role": "viewer"})
    await inner.set_raw("bob", await inner.get_raw("alice"))  # an attacker with write access to the store
    with pytest.raises(EncryptionError, match="'bob'"):
        await sealed.get("bob")
    await sealed.log_append("log:alice", [{"role": "admin"}])
    (entry,) = await inner.log_read("log:alice")
    await inner.log_append("log:bob", [entry.value])
    with pytest.raises(EncryptionError, match="entry 1 of log 'log:bob'"):
        await sealed.log_read("log:bob")


async def test_a_changed_bit_or_a_wrong_key_is_an_error_never_an_empty_session(store: BaseSessionStore) -> None:
    sealed = EncryptedStore(store, ring())
    inner: Any = store
    await sealed.set("1", {"n": 41})
    stored = await inner.get_raw("1")
    flipped = stored[:-1] + bytes([stored[-1] ^ 1])
    await inner.set_raw("flipped", flipped)
    with pytest.raises(EncryptionError, match="'flipped' does not open with key 'k1'"):
        await sealed.get("flipped")

    wrong = EncryptedStore(store, KeyRing({"k1": KEY_B}))
    other = EncryptedStore(store, KeyRing({"k9": KEY_B}))
    with pytest.raises(EncryptionError, match="'k1'"):
        await wrong.get("1")
    with pytest.raises(EncryptionError, match="key 'k1', which is not in the key ring"):
        await other.get("1")

    for policy in ("raise", "quarantine"):
        router = Router()
        router.use(session(wrong, on_decode_error=policy))

        @router.command("inc")
        async def inc(ctx: Context) -> None:
            ctx.session["n"] = ctx.session.get("n", 0) + 1

        with pytest.raises(EncryptionError):
            await router.handle(message(1, "/inc"))
        assert await inner.get_raw("1") == stored, f"{policy}: the record is left exactly as it was"
    assert [key async for key in inner.scan("1:")] == [], "nothing was quarantined"


async def test_under_a_lease_a_record_that_does_not_open_releases_the_lease(store: BaseSessionStore) -> None:
    await EncryptedStore(store, ring()).set("leased", {"n": 1})
    wrong = EncryptedStore(store, KeyRing({"k1": KEY_B}))
    with pytest.raises(EncryptionError):
        await wrong.lock("leased", lease=30, wait=0)
    held = await EncryptedStore(store, ring()).lock("leased", lease=30, wait=0)  # not held by the failed try
    assert held.record is not None
    await store.unlock(held.lease)  # type: ignore[attr-defined]


@pytest.mark.parametrize("isolation", ["local", "distributed"])
async def test_encryption_adds_no_writes_and_works_under_every_isolation(
    store: BaseSessionStore, isolation: str
) -> None:
    calls = Calls(store)
    router = Router()
    router.use(session(EncryptedStore(store, ring()), isolation=isolation))  # type: ignore[arg-type]

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        n = ctx.session.get("n", 0)
        await asyncio.sleep(0)
        ctx.session["n"] = n + 1

    @router.command("look")
    async def look(ctx: Context) -> None:
        ctx.state["n"] = ctx.session.get("n")

    await asyncio.gather(*(router.handle(message(1, "/inc", update_id=i)) for i in range(20)))
    calls.take()
    ctx = await router.handle(message(1, "/look"))
    assert ctx.state["n"] == 20
    counts = calls.take()
    assert counts.get("set_raw", 0) + counts.get("set_versioned", 0) == 0, counts
    assert counts.get("commit") is None or isolation == "distributed", counts


async def test_rotation_reseals_every_record_in_place_keeping_expiry(store: BaseSessionStore) -> None:
    old = EncryptedStore(store, KeyRing({"old": KEY_A}))
    for i in range(30):
        await old.set(f"r{i}", {"i": i}, ttl=3600 if i % 2 else None)
    both = EncryptedStore(store, KeyRing({"new": KEY_B, "old": KEY_A}))
    done = await rotate_keys(both, prefix="r")
    assert (done.resealed, done.current, done.raced) == (30, 0, 0)
    inner: Any = store
    for i in range(30):
        assert (await inner.get_raw(f"r{i}")).startswith(b"swe1:new:")
        left = await inner.expires_in(f"r{i}")
        assert (left is not None and 3500 < left <= 3600) if i % 2 else left is None
    only_new = EncryptedStore(store, KeyRing({"new": KEY_B}))
    assert [await only_new.get(f"r{i}") for i in range(30)] == [{"i": i} for i in range(30)]
    again = await rotate_keys(both, prefix="r")
    assert (again.resealed, again.current) == (0, 30), "a second run (a resumed one) skips what is done"


async def test_rotation_never_overwrites_a_concurrent_write(store: BaseSessionStore) -> None:
    old = EncryptedStore(store, KeyRing({"old": KEY_A}))
    for i in range(40):
        await old.set(f"c{i}", {"n": 0})
    both = EncryptedStore(store, KeyRing({"new": KEY_B, "old": KEY_A}))
    router = Router()
    router.use(session(both, key=lambda ctx: str(ctx.text).split()[1]))

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        ctx.session["n"] += 1

    updates = [router.handle(message(1, f"/inc c{i % 40}", update_id=i)) for i in range(120)]
    rotating = asyncio.ensure_future(rotate_keys(both, prefix="c"))
    await asyncio.gather(rotating, *updates)
    rotation = rotating.result()
    assert rotation.resealed + rotation.raced + rotation.current == 40
    assert [await both.get(f"c{i}") for i in range(40)] == [{"n": 3}] * 40, "no increment was lost"
    inner: Any = store
    assert all([(await inner.get_raw(f"c{i}")).startswith(b"swe1:new:") for i in range(40)])


async def test_plaintext_records_are_refused_read_on_request_and_sealed_by_rotation(store: BaseSessionStore) -> None:
    await store.set("legacy", {"from": "before encryption"})
    with pytest.raises(EncryptionError, match="'legacy' is not encrypted"):
        await EncryptedStore(store, ring()).get("legacy")
    lenient = EncryptedStore(store, ring(), accept_plaintext=True)
    assert await lenient.get("legacy") == {"from": "before encryption"}
    done = await rotate_keys(lenient, prefix="legacy")
    assert done.plaintext == 1
    assert await EncryptedStore(store, ring()).get("legacy") == {"from": "before encryption"}


def test_key_rings_are_checked_and_never_show_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad, match in (
        ({}, "non-empty"),
        ({"bad id!": KEY_A}, "key id"),
        ({"k": "not base64 at all!!"}, "base64"),
        ({"k": base64.urlsafe_b64encode(b"short").decode()}, "32 bytes"),
    ):
        with pytest.raises(InvalidValueError, match=match) as info:
            KeyRing(bad)
        assert KEY_A not in str(info.value)
    with pytest.raises(InvalidValueError, match="primary"):
        KeyRing({"a": KEY_A}, primary="b")
    parsed = KeyRing.from_string(f"new:{KEY_B}, old:{KEY_A}")
    assert parsed.ids == ("new", "old")
    assert KEY_A not in repr(parsed)
    assert KEY_B not in repr(parsed)
    with pytest.raises(InvalidValueError) as info:
        KeyRing.from_string(KEY_A)
    assert KEY_A not in str(info.value)
    monkeypatch.delenv("SESSIONWARE_KEYS", raising=False)
    with pytest.raises(EncryptionError, match="SESSIONWARE_KEYS"):
        KeyRing.from_env()
    monkeypatch.setenv("SESSIONWARE_KEYS", f"env:{KEY_A}")
    assert KeyRing.from_env().primary == "env"
    assert len(base64.urlsafe_b64decode(KeyRing.new_key())) == 32


def test_a_store_without_the_capabilities_is_refused() -> None:
    from .helpers import SeedStyleStore

    with pytest.raises(InvalidValueError, match="RawStore"):
        EncryptedStore(SeedStyleStore(), ring())


def test_without_cryptography_the_module_names_its_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "from sessionware import MissingExtraError\n"
        "try:\n"
        "    import sessionware.encryption\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("crypto ")
    assert "pip install 'sessionware[crypto]'" in done.stdout


async def test_popping_and_clearing_a_sealed_history(store: BaseSessionStore) -> None:
    manager = SessionManager(EncryptedStore(store, ring()))
    chat = await manager.create_session("ada")
    await manager.add_message(chat.id, "user", "first")
    await manager.add_message(chat.id, "assistant", SECRET)
    popped = await manager.pop_message(chat.id)
    assert popped is not None
    assert popped.text == SECRET
    assert [m.text for m in await manager.history(chat.id)] == ["first"]
    await manager.clear_history(chat.id)
    assert await manager.history(chat.id) == []


# -- the command line with SESSIONWARE_KEYS -----------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_the_command_line_reads_writes_and_rotates_through_the_keys(
    backend: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_cli import cli, drop, store_url

    url = store_url(backend, tmp_path)
    try:
        from sessionware import open_store

        inner: Any = open_store(url)
        sealed = EncryptedStore(inner, KeyRing({"old": KEY_A}))
        manager = SessionManager(sealed)
        chat = await manager.create_session("ada")
        await manager.add_message(chat.id, "user", SECRET)
        await sealed.set("bot:1", {"note": SECRET})
        await sealed.close()

        monkeypatch.delenv("SESSIONWARE_KEYS", raising=False)
        refused = cli("show", "bot:1", "--store", url, ok=False)
        assert refused.returncode == 1
        assert SECRET not in refused.stdout + refused.stderr

        monkeypatch.setenv("SESSIONWARE_KEYS", f"old:{KEY_A}")
        assert SECRET in cli("show", "bot:1", "--store", url).stdout
        assert SECRET in cli("show", chat.id, "--store", url).stdout
        exported = cli("export", "--store", url).stdout
        assert SECRET in exported, "with the keys, an export is plaintext"

        monkeypatch.setenv("SESSIONWARE_KEYS", f"new:{KEY_B},old:{KEY_A}")
        done = cli("rotate-keys", "--store", url)
        assert "re-sealed 3 records with key 'new'" in done.stdout  # the agent record, its index entry, bot:1
        assert "re-sealed 0 records" in cli("rotate-keys", "--store", url).stdout, "a second run has nothing to do"
        monkeypatch.setenv("SESSIONWARE_KEYS", f"new:{KEY_B}")
        assert SECRET in cli("show", "bot:1", "--store", url).stdout, "the records no longer need the old key"

        target = store_url(backend, tmp_path)
        try:
            dump = tmp_path / "plain.jsonl"
            dump.write_text(exported)
            cli("import", str(dump), "--store", target)
            at_rest: Any = open_store(target)
            try:
                raw = await at_rest.get_raw("bot:1")
                assert raw.startswith(b"swe1:new:"), "an import with the keys seals what it writes"
            finally:
                await at_rest.close()
        finally:
            await drop(target)
    finally:
        await drop(url)


def test_rotate_keys_without_keys_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from .test_cli import cli

    monkeypatch.delenv("SESSIONWARE_KEYS", raising=False)
    done = cli("rotate-keys", "--store", f"sqlite:///{tmp_path / 'x.db'}", ok=False)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "sessionware: no encryption keys: set SESSIONWARE_KEYS to '<id>:<base64 key>[,<id>:<key>...]'"
    )


@pytest.mark.parametrize("keys_on_import", [False, True])
async def test_a_sealed_export_moves_ciphertext_without_keys(
    keys_on_import: bool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionware import open_store

    from .test_cli import cli

    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    sealed = EncryptedStore(open_store(source), ring())
    manager = SessionManager(sealed)
    chat = await manager.create_session("ada")
    await manager.add_message(chat.id, "user", SECRET)
    await sealed.set("bot:1", {"note": SECRET}, ttl=3600)
    await sealed.close()

    monkeypatch.delenv("SESSIONWARE_KEYS", raising=False)
    exported = cli("export", "--sealed", "--store", source).stdout
    assert "launch code" not in exported, "a sealed export holds ciphertext only"
    assert '"sealed":true' in exported.splitlines()[0]
    dump = tmp_path / "sealed.jsonl"
    dump.write_text(exported)
    if keys_on_import:
        monkeypatch.setenv("SESSIONWARE_KEYS", f"k1:{KEY_A}")
    cli("import", str(dump), "--store", target)

    moved = EncryptedStore(open_store(target), ring())
    try:
        assert await moved.get("bot:1") == {"note": SECRET}
        left = await moved.expires_in("bot:1")
        assert left is not None
        assert 3500 < left <= 3600
        assert (await SessionManager(moved).history(chat.id))[0].text == SECRET
        raw: Any = await moved.inner.get_raw("bot:1")
        assert raw.startswith(b"swe1:k1:"), "written back exactly as it was stored, never sealed twice"
    finally:
        await moved.close()
