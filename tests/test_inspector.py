"""The web inspector in a real browser: Playwright driving the system's Chromium against real stores.

The app runs in-process on uvicorn on a free loopback port (and once through the real
``sessionware inspect`` command); every page a test looks at is also written to ``screenshots/``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

from sessionware import SessionManager

from .conftest import open_backend, unique

playwright_api = pytest.importorskip("playwright.async_api")
pytest.importorskip("starlette")

from sessionware.inspect import bind, create_app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "screenshots"
SCRIPT = Path(sys.executable).with_name("sessionware")
TOKEN = "test-token-" + unique()
STORES = ["sqlite", "redis", "postgres"]
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The tests share one event loop, so that they can share one browser."""


def png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG (a blue rectangle), so the browser can decode and show it."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\x20\x60\xd0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    """One Chromium for the module's tests (each test opens its own pages, so no cookie is shared)."""
    if not HAVE_CHROMIUM:
        message = f"no Chromium at {CHROMIUM}; install it with: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(params=STORES, loop_scope="module")
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    s, cleanup = await open_backend(request.param, tmp_path)
    try:
        yield s
    finally:
        await cleanup()


@pytest_asyncio.fixture(loop_scope="module")
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Any]:
    s, cleanup = await open_backend("sqlite", tmp_path)
    try:
        yield s
    finally:
        await cleanup()


@asynccontextmanager
async def serving(store: Any, **options: Any) -> AsyncIterator[str]:
    """The inspector of ``store`` served by uvicorn in this event loop; yields its base URL."""
    import uvicorn

    options.setdefault("poll_ms", 200)
    options.setdefault("token", TOKEN)
    app = create_app(store, store_name=backend_of(store), **options)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def backend_of(store: Any) -> str:
    return type(store).__name__.removesuffix("SessionStore").lower()


async def shot(page: Any, name: str, store: Any) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}-{backend_of(store)}.png"), full_page=True)


async def seed(store: Any) -> dict[str, str]:
    """Bot sessions, and agent sessions of two owners; one conversation has an image and two tool calls."""
    await store.set("chat:42", {"cart": ["milk", {"qty": 2}], "lang": "en", "profile": {"name": "Ada"}}, ttl=3600)
    await store.set("chat:43", {"lang": "nb"})
    await store.set("cron:nightly", {"last": "2026-01-01"})
    manager = SessionManager(store)
    first = await manager.create_session("user-7", metadata={"plan": "pro", "tags": ["beta"]})
    await manager.add_message(first.id, "system", "You are a weather assistant.")
    await manager.add_message(
        first.id,
        "user",
        [
            {"type": "text", "text": "Weather in Oslo? Here is the sky:"},
            {"type": "image", "data": png(), "media_type": "image/png"},
        ],
    )
    await manager.add_message(
        first.id,
        "assistant",
        None,
        tool_calls=[
            {"id": "call-w", "name": "weather", "arguments": {"city": "Oslo", "unit": "C"}},
            {"id": "call-s", "name": "search", "arguments": {"q": "Oslo sky"}},
        ],
    )
    await manager.add_message(first.id, "tool", '{"temp": 3, "sky": "clear"}', tool_call_id="call-w")
    await manager.add_message(first.id, "tool", "search backend down", tool_call_id="call-s", is_error=True)
    await manager.track_tool_invocation(
        first.id,
        "weather",
        call_id="call-w",
        arguments={"city": "Oslo", "unit": "C"},
        result={"temp": 3},
        duration=0.12,
    )
    await manager.track_tool_invocation(
        first.id,
        "search",
        call_id="call-s",
        arguments={"q": "Oslo sky"},
        status="error",
        error={"code": "unavailable"},
        duration=0.45,
    )
    await manager.add_message(first.id, "assistant", "It is 3 °C and clear in Oslo.")
    other = await manager.create_session("user-8")
    await manager.add_message(other.id, "user", "hello")
    return {"agent": first.id, "other": other.id}


def record(session_id: str) -> str:
    return f"agent:s:{{{session_id}}}"


async def keys_listed(page: Any) -> list[str]:
    return [await row.get_attribute("data-key") for row in await page.query_selector_all("#sessions tbody tr")]


@in_module_loop
async def test_list_filters_and_a_transcript_with_tool_calls(store: Any, browser: Any) -> None:
    ids = await seed(store)
    async with serving(store) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/?token={TOKEN}")
        assert "token" not in page.url, "the token is moved to a cookie and out of the address bar"
        listed = await keys_listed(page)
        agents = [record(ids["agent"]), record(ids["other"])]
        assert sorted(listed) == sorted(["chat:42", "chat:43", "cron:nightly", *agents])
        row = page.locator(f'tr[data-key="{record(ids["agent"])}"]')
        cells = await row.locator("td").all_inner_texts()
        assert cells[1:3] == ["agent", "user-7"]
        assert cells[4] == "6", "message count"
        assert cells[6] == "never"
        bot = await page.locator('tr[data-key="chat:42"] td').all_inner_texts()
        assert bot[1] == "bot"
        assert bot[6].startswith(("in 59m", "in 1h")), bot[6]
        await shot(page, "list", store)

        await page.select_option("#f-kind", "agent")
        await page.click("#f-apply")
        assert sorted(await keys_listed(page)) == sorted(agents)
        await page.fill("#f-owner", "user-8")
        await page.click("#f-apply")
        assert await keys_listed(page) == [record(ids["other"])]
        await page.goto(f"{base}/?prefix=chat%3A")
        assert sorted(await keys_listed(page)) == ["chat:42", "chat:43"]
        await page.goto(f"{base}/?kind=bot&prefix=cron")
        assert await keys_listed(page) == ["cron:nightly"]
        await page.goto(f"{base}/?owner=nobody")
        assert await page.inner_text("#empty") == "No sessions match."
        assert await status(page, f"{base}/?owner=" + "x" * 5000) == 400
        assert "user_id" in await page.inner_text("#message")
        assert await status(page, f"{base}/?cursor=bogus") == 400
        assert await page.inner_text("#message") == "not a listing cursor: 'bogus'"

        await page.goto(base)
        await page.click(f'tr[data-key="{record(ids["agent"])}"] a')
        await page.wait_for_selector("#transcript")
        roles = [await m.get_attribute("class") for m in await page.query_selector_all("#transcript .msg")]
        assert roles == ["msg system", "msg user", "msg assistant", "msg assistant"], "tool results fold into calls"
        image = page.locator("#transcript img")
        assert await image.evaluate("img => img.complete && img.naturalWidth") == 24, "the image is shown"
        call = page.locator('details.call[data-call="call-w"]')
        assert await call.evaluate("d => d.open") is False, "tool calls are folded"
        assert not await call.locator("pre").first.is_visible()
        await call.locator("summary").click()
        assert await call.evaluate("d => d.open") is True
        opened = await call.inner_text()
        assert '"city": "Oslo"' in opened
        assert '{"temp": 3, "sky": "clear"}' in opened
        assert "success 120 ms" in opened
        failed = page.locator('details.call[data-call="call-s"]')
        await failed.locator("summary").click()
        failed_text = await failed.inner_text()
        assert "result (error) · message #5\nsearch backend down" in failed_text
        assert '"code": "unavailable"' in failed_text
        bars = page.locator("#timeline g.tool")
        assert await bars.count() == 2
        assert [await g.get_attribute("data-status") for g in await bars.all()] == ["success", "error"]
        widths = [float(await r.get_attribute("width") or 0) for r in await page.locator("#timeline rect").all()]
        assert widths[1] > widths[0] * 3, "bars are as long as the calls took (120 ms vs 450 ms)"
        assert "plan" in await page.inner_text("#json")
        await shot(page, "agent-session", store)

        await page.goto(f"{base}/session?key=chat%3A42")
        facts = await page.inner_text(".facts")
        assert re.search(r"expires\s+in (59m|1h)", facts), facts
        tree = page.locator("#json")
        assert '"cart"' in await tree.inner_text()
        nested = tree.locator("details details details").first  # the {"qty": 2} inside the cart
        assert await nested.evaluate("d => d.open") is False, "levels past the second start folded"
        await nested.locator("summary").click()
        assert '"qty": 2' in await tree.inner_text()
        await shot(page, "bot-session", store)


@in_module_loop
async def test_pages_follow_the_cursor(sqlite_store: Any, browser: Any) -> None:
    names = [f"k{i:02d}" for i in range(7)]
    for name in names:
        await sqlite_store.set(name, {"n": name})
    async with serving(sqlite_store, page_size=3) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/?token={TOKEN}")
        seen: list[list[str]] = []
        while True:
            seen.append(await keys_listed(page))
            if await page.locator("#next").count() == 0:
                break
            await page.click("#next")
        assert [len(p) for p in seen] == [3, 3, 1]
        assert sorted(k for p in seen for k in p) == names
        assert await page.locator("#first").count() == 1


@in_module_loop
async def test_no_token_no_page(sqlite_store: Any, browser: Any) -> None:
    await sqlite_store.set("secret", {"pin": 1234})
    async with serving(sqlite_store) as base:
        page = await browser.new_page()
        for path in ("/", "/session?key=secret", "/api/etag?key=secret", "/?token=wrong-token"):
            response = await page.goto(base + path)
            assert response is not None
            assert response.status == 403, path
            assert "1234" not in await page.content()
        assert "needs its access token" in await page.inner_text("#message")
        await shot(page, "refused", sqlite_store)
        answer = await page.request.post(f"{base}/edit", form={"key": "secret", "value": "{}", "token": ""})
        assert answer.status == 403
        response = await page.goto(f"{base}/session?key=secret&token={TOKEN}")
        assert response is not None
        assert response.status == 200
        assert "1234" in await page.inner_text("#json")
        fresh = await browser.new_page()  # another browser profile has no cookie
        response = await fresh.goto(f"{base}/session?key=secret")
        assert response is not None
        assert response.status == 403


async def status(page: Any, url: str) -> int:
    response = await page.goto(url)
    assert response is not None
    return int(response.status)


@in_module_loop
async def test_two_inspectors_keep_their_own_tokens(sqlite_store: Any, browser: Any) -> None:
    await sqlite_store.set("k", {"v": 1})
    async with serving(sqlite_store) as first, serving(sqlite_store, token="another-" + TOKEN) as second:
        page = await browser.new_page()
        assert await status(page, f"{first}/?token={TOKEN}") == 200
        assert await status(page, f"{second}/?token=another-{TOKEN}") == 200
        assert await status(page, first) == 200, "the second inspector's cookie did not replace the first one's"
        assert await status(page, second) == 200
        fresh = await browser.new_page()
        assert await status(fresh, f"{second}/?token={TOKEN}") == 403, "one inspector's token opens only that one"


@in_module_loop
async def test_read_only_refuses_every_write(store: Any, browser: Any) -> None:
    await store.set("chat:1", {"v": 1})
    before = await store.get("chat:1")
    async with serving(store) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/session?key=chat%3A1&token={TOKEN}")
        assert await page.inner_text("#mode") == "read-only"
        assert await page.locator("#delete").count() == 0
        assert await page.locator("#edit").count() == 0
        for path in ("/delete?key=chat%3A1", "/edit?key=chat%3A1"):
            response = await page.goto(base + path)
            assert response is not None
            assert response.status == 403
            assert "read-only: start it with --write" in await page.inner_text("#message")
        for path, form in [("/delete", {"key": "chat:1"}), ("/edit", {"key": "chat:1", "value": '{"v": 2}'})]:
            answer = await page.request.post(base + path, form={**form, "token": TOKEN})
            assert answer.status == 403
            assert "read-only" in await answer.text()
    assert await store.get("chat:1") == before


@in_module_loop
async def test_delete_after_confirmation(store: Any, browser: Any) -> None:
    ids = await seed(store)
    async with serving(store, write=True) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/session?key=chat%3A43&token={TOKEN}")
        await page.click("#delete")
        assert "Delete chat:43?" in await page.inner_text("h1")
        await shot(page, "confirm-delete", store)
        await page.click("#cancel")
        assert await store.get("chat:43") == {"lang": "nb"}, "nothing is deleted before the confirmation"
        await page.click("#delete")
        await page.click("#confirm-delete")
        assert await page.inner_text("#message") == "Deleted 'chat:43'."
        assert await store.get("chat:43") is None

        await page.goto(f"{base}/session?key={record(ids['other'])}")
        await page.click("#delete")
        assert "history and tool calls" in await page.inner_text("main")
        await page.click("#confirm-delete")
        assert await SessionManager(store).get_session(ids["other"]) is None
        assert await store.log_length(f"agent:h:{{{ids['other']}}}") == 0
        assert await SessionManager(store).list_sessions("user-8") == await SessionManager(store).list_sessions("x")
        await page.goto(base)
        assert "chat:43" not in await keys_listed(page)
        forged = await page.request.post(f"{base}/delete", form={"key": "chat:42", "token": "not-the-token"})
        assert forged.status == 403, "a form without the page's token (another site's) is refused"
        assert await store.get("chat:42") is not None


@in_module_loop
async def test_edit_refuses_bad_json_and_stores_good(store: Any, browser: Any) -> None:
    await store.set("chat:42", {"lang": "en", "n": 1}, ttl=3600)
    before = await store.get_raw("chat:42")
    async with serving(store, write=True) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/session?key=chat%3A42&token={TOKEN}")
        await page.click("#edit")
        assert '"lang": "en"' in await page.input_value("#value")
        for bad, reason in [
            ('{"lang": "en", ', "not JSON: Expecting property name"),
            ("[1, 2]", "a session is a JSON object, not list"),
            ("{}", "an empty object would delete the session"),
            ('{"x": NaN}', "non-finite"),
        ]:
            await page.fill("#value", bad)
            await page.click("#save")
            error = await page.inner_text("#edit-error")
            assert error.startswith("Not saved: "), error
            assert reason in error, error
            assert await page.input_value("#value") == bad, "what was typed is kept to fix"
            assert await store.get_raw("chat:42") == before, "nothing stored changed"
        await shot(page, "edit-refused", store)
        await page.fill("#value", '{"lang": "nb", "n": 2, "added": [true, null]}')
        await page.click("#save")
        await page.wait_for_selector("#json")
        assert await store.get("chat:42") == {"lang": "nb", "n": 2, "added": [True, None]}
        left = await store.expires_in("chat:42")
        assert left is not None
        assert 3500 < left <= 3600, "the edit keeps the session's expiry"

        await page.click("#edit")
        await store.set("chat:42", {"lang": "de"}, ttl=3600)  # the bot writes while the operator edits
        await page.wait_for_selector("#changed:not([hidden])", timeout=10000)
        await page.fill("#value", '{"lang": "fr"}')
        await page.click("#save")
        assert "changed since you opened it" in await page.inner_text("#edit-error")
        assert await store.get("chat:42") == {"lang": "de"}, "the bot's write is not overwritten"


@in_module_loop
async def test_edit_waits_for_the_sessions_lock(sqlite_store: Any, browser: Any) -> None:
    from sessionware.isolation import LocalIsolation

    await sqlite_store.set("chat:9", {"n": 1})
    async with serving(sqlite_store, write=True) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/edit?key=chat%3A9&token={TOKEN}")
        await page.fill("#value", '{"n": 100}')
        held = asyncio.Event()
        release = asyncio.Event()

        async def bot() -> None:
            async with LocalIsolation(sqlite_store).open("chat:9") as update:
                held.set()
                await release.wait()
                await update.save({"n": 2})

        task = asyncio.create_task(bot())
        await held.wait()
        click = asyncio.create_task(page.click("#save"))
        await asyncio.sleep(0.5)
        assert await sqlite_store.get("chat:9") == {"n": 1}, "the edit waits while the bot holds the session"
        release.set()
        await task
        await click
        assert "changed since you opened it" in await page.inner_text("#edit-error")
        assert await sqlite_store.get("chat:9") == {"n": 2}


@in_module_loop
async def test_pages_update_live(store: Any, browser: Any) -> None:
    ids = await seed(store)
    async with serving(store) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/session?key=chat%3A43&token={TOKEN}")
        await store.set("chat:43", {"lang": "sv"})
        await playwright_api.expect(page.locator("#json")).to_contain_text('"sv"', timeout=10000)
        await page.goto(f"{base}/session?key={record(ids['other'])}")
        await SessionManager(store).add_message(ids["other"], "assistant", "a reply that arrives later")
        await page.wait_for_selector("text=a reply that arrives later", timeout=10000)
        await page.goto(base)
        assert "chat:new" not in await keys_listed(page)
        await store.set("chat:new", {"v": 1})
        await page.locator('tr[data-key="chat:new"]').wait_for(timeout=10000)
        await page.focus("#f-prefix")
        await page.keyboard.type("cha")
        await store.set("chat:newer", {"v": 1})
        await asyncio.sleep(1.5)
        assert await page.input_value("#f-prefix") == "cha", "no reload while the operator types"
        assert "chat:newer" not in await keys_listed(page)
        await page.locator("h1").click()
        await page.locator('tr[data-key="chat:newer"]').wait_for(timeout=10000)
        await store.delete("chat:43")
        await page.goto(f"{base}/api/etag?key=chat%3A43")
        assert '"etag":"gone"' in await page.content()


@in_module_loop
async def test_session_text_is_never_markup(sqlite_store: Any, browser: Any) -> None:
    evil = "<img src=x onerror=\"document.title='owned'\">"
    await sqlite_store.set(evil, {"note": "</script><script>document.title='owned'</script>", "nul": "a\x00b"})
    async with serving(sqlite_store) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/?token={TOKEN}")
        assert evil in await page.inner_text("#sessions")
        await page.click("#sessions a")
        assert "</script><script>" in await page.inner_text("#json")
        assert "a\\u0000b" in await page.inner_text("#json")
        assert await page.title() != "owned"
        assert await page.locator("main img").count() == 0
        response = await page.goto(f"{base}/session?key={quote('<b id=bold>missing</b>')}")
        assert response is not None
        assert response.status == 404
        assert await page.inner_text("#message") == "No session '<b id=bold>missing</b>' in sqlite."
        assert await page.locator("#bold").count() == 0, "an error message is text, never markup"


@in_module_loop
async def test_the_inspect_command(tmp_path: Path, browser: Any) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    from sessionware import open_store

    store = open_store(url)
    await store.set("chat:1", {"hello": "world"})
    await store.close()
    proc = subprocess.Popen(  # noqa: ASYNC220 - the server runs while this test browses it
        [str(SCRIPT), "inspect", "--store", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)
        assert "read-only" in first, first
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.startswith("open http://127.0.0.1:"), line
        address = line.split()[1]
        token = address.split("token=")[1]
        assert len(token) >= 32
        page = await browser.new_page()
        await page.goto(address)
        assert await keys_listed(page) == ["chat:1"]
        refused = await (await browser.new_page()).goto(address.split("?")[0])
        assert refused is not None
        assert refused.status == 403
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(proc.wait, 10)
    missing = await asyncio.to_thread(
        subprocess.run,
        [str(SCRIPT), "inspect", "--store", f"sqlite:///{tmp_path}/absent.db"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr == f"sessionware: no SQLite database at '{tmp_path}/absent.db'\n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = await asyncio.to_thread(
            subprocess.run,
            [str(SCRIPT), "inspect", "--store", url, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 1
    assert busy.stderr == f"sessionware: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_without_the_extra_the_error_names_it() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from sessionware.cli import main\n"
        "main(['inspect', '--store', 'memory://'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "sessionware: the web inspector backend needs the 'uvicorn' package: pip install 'sessionware[inspect]'\n"
    )
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from sessionware.errors import MissingExtraError\n"
        "try:\n    import sessionware.inspect\n"
        "except MissingExtraError as e:\n    print(e.extra, e.name)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "inspect starlette\n", done.stderr


@in_module_loop
async def test_an_undecodable_record_and_a_long_history(
    sqlite_store: Any, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sqlite_store.set_raw("broken", b'{"half": \xff')
    manager = SessionManager(sqlite_store)
    s = await manager.create_session("user-1")
    for i in range(4):
        await manager.add_message(s.id, "user", f"message {i}")
    monkeypatch.setattr("sessionware.inspect.app.HISTORY_SHOWN", 2)
    async with serving(sqlite_store, write=True) as base:
        page = await browser.new_page()
        assert await status(page, f"{base}/session?key=broken&token={TOKEN}") == 200
        assert "This record cannot be decoded: " in await page.inner_text("#undecodable")
        assert await page.inner_text("#raw") == '{"half": \\xff'
        assert await page.locator("#edit").count() == 0
        await page.click("#delete")
        await page.click("#confirm-delete")
        assert await sqlite_store.get_raw("broken") is None

        await page.goto(f"{base}/session?key={record(s.id)}")
        assert await page.inner_text(".notice") == "showing the newest 2 of 4 messages"
        seqs = [await m.get_attribute("data-seq") for m in await page.query_selector_all("#transcript .msg")]
        assert seqs == ["3", "4"]
