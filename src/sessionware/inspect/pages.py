"""The inspector's HTML: server-rendered pages with a little inline CSS and script, everything escaped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from ..cli import AGENT, BOT, KINDS, SessionRow, counted, escape_text, human_duration, human_time, plain

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1d232b;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}header .mode{margin-left:auto;opacity:.75}
main{padding:1em 1.2em;max-width:1200px}
h1{font-size:1.25em;margin:.2em 0 .6em;word-break:break-all}h2{font-size:1.05em;margin:1.4em 0 .5em}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{padding:.35em .6em;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.key{font-family:ui-monospace,monospace;word-break:break-all}
form.filters{display:flex;gap:.6em;flex-wrap:wrap;align-items:end;margin-bottom:1em}
form.filters label{display:flex;flex-direction:column;font-size:.85em;color:#555}
input,select,button,textarea{font:inherit}button{cursor:pointer}
.kind{font-size:.8em;padding:.05em .45em;border-radius:.6em;background:#dde3ea}.kind.agent{background:#d6ecff}
.facts{display:flex;gap:1.6em;flex-wrap:wrap;margin:.4em 0 1em}.facts div span{display:block;font-size:.8em;color:#666}
.json{font-family:ui-monospace,monospace;font-size:13px;background:#fff;border:1px solid #e3e6ea;padding:.6em;
 overflow:auto}
.json details{margin-left:1.1em}.json summary{margin-left:-1.1em;cursor:pointer}.json .entry{margin-left:1.1em}
.json .k{color:#7a3e9d}.json .s{color:#1a7f37}.json .n{color:#0550ae}.json .b{color:#cf222e}.json .z{color:#888}
.msg{background:#fff;border:1px solid #e3e6ea;border-left:4px solid #aab;border-radius:4px;padding:.5em .8em;
 margin:.5em 0}
.msg.user{border-left-color:#0969da}.msg.assistant{border-left-color:#1a7f37}.msg.tool{border-left-color:#bf8700}
.msg.system,.msg.developer{border-left-color:#8250df}.msg .who{font-weight:600;font-size:.85em;color:#555}
.msg .seq{color:#999;font-weight:400}.msg pre,.call pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0}
.msg img{max-width:360px;max-height:260px;display:block;margin:.3em 0;border:1px solid #ddd}
.call{background:#fbf8ef;border:1px solid #eadcae;border-radius:4px;margin:.4em 0;padding:.3em .6em}
.call summary{cursor:pointer;font-family:ui-monospace,monospace}
.status{font-size:.8em;padding:.05em .45em;border-radius:.6em;background:#ddd}
.status.success{background:#dafbe1}.status.error{background:#ffebe9}.status.denied{background:#fff1c2}
.status.action_required{background:#ddf4ff}
.part{font-size:.8em;color:#666}.error-box{background:#ffebe9;border:1px solid #cf222e;padding:.6em;margin:.6em 0}
.notice{background:#fff8c5;border:1px solid #d4a72c;padding:.6em;margin:.6em 0}
.pager{margin:1em 0;display:flex;gap:1em}textarea{width:100%;min-height:22em;font-family:ui-monospace,monospace}
svg.timeline text{font:12px system-ui,sans-serif}a.danger,button.danger{color:#cf222e}
"""

STATUS_COLOURS = {"success": "#2da44e", "error": "#cf222e", "denied": "#d4a72c", "action_required": "#0969da"}


def page(title: str, body: str, *, nonce: str, write: bool, script: str = "") -> str:
    """A whole HTML document; ``script`` runs under the response's CSP nonce."""
    mode = "read-write" if write else "read-only"
    js = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · sessionware inspector</title>"
        f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head><body>'
        '<header><a href="/">sessionware inspector</a>'
        f'<span class="mode" id="mode">{mode}</span></header>'
        f"<main>{body}</main>{js}</body></html>"
    )


def text(value: object) -> str:
    """Any text from a store, escaped for HTML (control characters and lone surrogates made visible)."""
    return escape(escape_text(str(value)))


def link(path: str, **query: str | None) -> str:
    """``path`` with the non-empty ``query`` values, escaped for an attribute."""
    args = {k: v for k, v in query.items() if v}
    return escape(path + ("?" + urlencode(args) if args else ""))


def session_link(key: str) -> str:
    """The address of a session's page, escaped for an attribute."""
    return link("/session", key=key)


def etag_url(key: str) -> str:
    """Where a page polls the etag of session ``key``."""
    return "/api/etag?" + urlencode({"key": key})


def human_size(size: int | None) -> str:
    """Bytes as ``812 B``, ``3.4 KiB``, ``1.2 MiB``."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def expiry(seconds: float | None) -> str:
    """When a record expires, as a duration from now."""
    return "never" if seconds is None else f"in {human_duration(seconds)}"


# -- JSON, pretty and collapsible --------------------------------------------------------------------


def json_tree(value: Any, *, open_depth: int = 2) -> str:
    """``value`` as nested ``<details>``: objects and arrays fold, the first ``open_depth`` levels open."""
    return f'<div class="json" id="json">{_node(plain(value), None, 0, open_depth)}</div>'


def _leaf(value: Any) -> str:
    if isinstance(value, str):
        return f'<span class="s">{escape(_json(value))}</span>'
    if isinstance(value, bool):
        return f'<span class="b">{"true" if value else "false"}</span>'
    if value is None:
        return '<span class="z">null</span>'
    return f'<span class="n">{escape(_json(value))}</span>'


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


def _node(value: Any, name: str | None, depth: int, open_depth: int) -> str:
    label = "" if name is None else f'<span class="k">{escape(name)}</span>: '
    if isinstance(value, dict):
        items = [_node(v, _json(k), depth + 1, open_depth) for k, v in value.items()]
        brackets = ("{", "}", counted(len(value), "key"))
    elif isinstance(value, list):
        items = [_node(v, None, depth + 1, open_depth) for v in value]
        brackets = ("[", "]", counted(len(value), "item"))
    else:
        return f'<div class="entry">{label}{_leaf(value)}</div>'
    if not items:
        return f'<div class="entry">{label}{brackets[0]}{brackets[1]}</div>'
    opened = " open" if depth < open_depth else ""
    return (
        f"<details{opened}><summary>{label}{brackets[0]} <span class=z>{brackets[2]}</span></summary>"
        f"{''.join(items)}<div>{brackets[1]}</div></details>"
    )


def pre_json(value: Any) -> str:
    """``value`` as indented JSON text in a ``<pre>``."""
    return f"<pre>{escape(json.dumps(plain(value), indent=2, ensure_ascii=True, default=str))}</pre>"


# -- the session list ----------------------------------------------------------------------------------


def session_list(
    rows: Sequence[SessionRow],
    *,
    owner: str,
    prefix: str,
    kind: str,
    cursor: str | None,
    next_cursor: str | None,
    store_name: str,
) -> str:
    """The list page's body: the filters, one row per session, and the pager."""
    options = "".join(
        f'<option value="{k}"{" selected" if kind == k else ""}>{k or "any"}</option>' for k in ("", *KINDS)
    )
    filters = (
        '<form class="filters" method="get" action="/">'
        f'<label>owner<input name="owner" id="f-owner" value="{escape(owner)}"></label>'
        f'<label>key prefix<input name="prefix" id="f-prefix" value="{escape(prefix)}"></label>'
        f'<label>kind<select name="kind" id="f-kind">{options}</select></label>'
        '<button type="submit" id="f-apply">Filter</button>'
        '<a href="/">clear</a></form>'
    )
    body = [f"<h1>Sessions in {text(store_name)}</h1>", filters]
    if not rows:
        body.append('<p id="empty">No sessions match.</p>')
    else:
        body.append(
            '<table id="sessions"><thead><tr><th>key</th><th>kind</th><th>owner</th><th>size</th>'
            "<th>messages</th><th>last activity</th><th>expires</th></tr></thead><tbody>"
        )
        for row in rows:
            body.append(
                f'<tr data-key="{escape(row.key)}"><td class="key"><a href="{session_link(row.key)}">'
                f"{text(row.key)}</a></td>"
                f'<td><span class="kind {row.kind}">{row.kind}</span></td>'
                f"<td>{text(row.owner) if row.owner is not None else '-'}</td>"
                f'<td class="num">{human_size(row.size)}</td>'
                f'<td class="num">{"-" if row.messages is None else row.messages}</td>'
                f"<td>{human_time(row.updated_at)}</td><td>{expiry(row.expires_in)}</td></tr>"
            )
        body.append("</tbody></table>")
    pager = []
    if cursor:
        pager.append(f'<a id="first" href="{link("/", owner=owner, prefix=prefix, kind=kind)}">← first page</a>')
    if next_cursor:
        href = link("/", owner=owner, prefix=prefix, kind=kind, cursor=next_cursor)
        pager.append(f'<a id="next" href="{href}">next page →</a>')
    body.append(f'<div class="pager">{"".join(pager)}</div>')
    return "".join(body)


def facts(items: Iterable[tuple[str, str]]) -> str:
    """A row of labelled facts (version, size, expiry...)."""
    return '<div class="facts">' + "".join(f"<div><span>{k}</span>{v}</div>" for k, v in items) + "</div>"


def write_actions(key: str, *, write: bool, editable: bool) -> str:
    """The edit and delete links of a session page (shown read-only as a hint to start with --write)."""
    if not write:
        return '<p class="part">read-only: start the inspector with --write to edit or delete sessions</p>'
    edit = f'<a id="edit" href="{link("/edit", key=key)}">edit JSON</a> · ' if editable else ""
    return f'<p>{edit}<a id="delete" class="danger" href="{link("/delete", key=key)}">delete…</a></p>'


def bot_session(key: str, row: SessionRow, value: Any, *, write: bool) -> str:
    """A bot session's page body: its facts and its JSON as a collapsible tree."""
    return (
        f'<h1><span class="kind bot">{BOT}</span> {text(key)}</h1>'
        + facts(
            [
                ("version", "-" if row.version is None else str(row.version)),
                ("size", human_size(row.size)),
                ("expires", expiry(row.expires_in)),
            ]
        )
        + write_actions(key, write=write, editable=True)
        + json_tree(value)
    )


def undecodable(key: str, row: SessionRow, data: bytes, reason: str, *, write: bool, shown: int = 4096) -> str:
    """The page of a record that cannot be decoded: why, and its first ``shown`` bytes as they are stored."""
    more = "" if len(data) <= shown else f'<p class="part">the first {shown} of {len(data)} bytes</p>'
    return (
        f'<h1><span class="kind {row.kind}">{row.kind}</span> {text(key)}</h1>'
        + facts([("size", human_size(row.size)), ("expires", expiry(row.expires_in))])
        + f'<div class="error-box" id="undecodable">This record cannot be decoded: {text(reason)}</div>'
        + write_actions(key, write=write, editable=False)
        + f'<h2>Stored bytes</h2><pre class="json" id="raw">{escape(raw_text(data[:shown]))}</pre>{more}'
    )


def raw_text(data: bytes) -> str:
    """Bytes as text: valid UTF-8 as it is (control characters and backslashes escaped), other bytes as ``\\xff``."""
    out = []
    for ch in data.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else escape_text(ch))
    return "".join(out)


# -- an agent session ----------------------------------------------------------------------------------


def agent_session(key: str, session: Any, row: SessionRow, *, write: bool) -> str:
    """An agent session's page body: facts, metadata, the transcript and the tool timeline."""
    shown = len(session.conversation_history)
    parts = [
        f'<h1><span class="kind agent">{AGENT}</span> {text(session.id)}</h1>',
        facts(
            [
                ("owner", text(session.user_id)),
                ("messages", str(session.message_count)),
                ("tool calls", str(session.tool_invocation_count)),
                ("created", _when(session.created_at)),
                ("last activity", _when(session.updated_at)),
                ("version", str(session.version)),
                ("size", human_size(row.size)),
                ("expires", expiry(row.expires_in)),
            ]
        ),
        write_actions(key, write=write, editable=False),
        "<h2>Metadata</h2>",
        json_tree(session.metadata, open_depth=1) if session.metadata else "<p>none</p>",
        f"<h2>Tool invocations ({session.tool_invocation_count})</h2>",
        timeline(session.tool_invocations),
        "<h2>Conversation</h2>",
    ]
    if shown < session.message_count:
        parts.append(f'<p class="notice">showing the newest {shown} of {session.message_count} messages</p>')
    parts.append(transcript(session.conversation_history, session.tool_invocations))
    return "".join(parts)


def _when(moment: datetime) -> str:
    return human_time(moment.timestamp())


def transcript(messages: Sequence[Any], invocations: Sequence[Any]) -> str:
    """The conversation as chat bubbles; a tool result is folded into the call it answers."""
    results = {m.tool_call_id: m for m in messages if m.role == "tool" and m.tool_call_id is not None}
    calls = {c.id for m in messages for c in m.tool_calls}
    runs = {t.call_id: t for t in invocations}
    out = ['<div id="transcript">']
    for m in messages:
        if m.role == "tool" and m.tool_call_id in calls:
            continue
        who = text(m.role) + ("" if m.name is None else f" ({text(m.name)})")
        if m.tool_call_id is not None:
            who += f" answering {text(m.tool_call_id)}"
        if m.is_error:
            who += ' <span class="status error">error</span>'
        out.append(
            f'<div class="msg {escape(m.role)}" data-seq="{m.seq}"><div class="who">{who} '
            f'<span class="seq">#{m.seq} · {_when(m.created_at)}</span></div>{content(m.content)}'
        )
        for call in m.tool_calls:
            out.append(tool_call(call, results.get(call.id), runs.get(call.id)))
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def tool_call(call: Any, result: Any, run: Any) -> str:
    """One tool call, folded: its name in the summary; arguments, result and the invocation inside."""
    status = "" if run is None else f' <span class="status {escape(run.status)}">{escape(run.status)}</span>'
    took = "" if run is None or run.duration is None else f" {run.duration * 1000:.0f} ms"
    body = [f"<div class=part>arguments</div>{pre_json(call.arguments)}"]
    if result is not None:
        label = "result (error)" if result.is_error else "result"
        body.append(f"<div class=part>{label} · message #{result.seq}</div>{content(result.content)}")
    elif run is not None and run.result is not None:
        body.append(f"<div class=part>result</div>{pre_json(run.result)}")
    if run is not None and run.error is not None:
        body.append(f"<div class=part>error</div>{pre_json(run.error)}")
    return (
        f'<details class="call" data-call="{escape(call.id)}"><summary>→ {text(call.name)}'
        f"({escape(_short(call.arguments))}){status}{took} <span class=seq>[{text(call.id)}]</span></summary>"
        f"{''.join(body)}</details>"
    )


def _short(arguments: Any, limit: int = 60) -> str:
    words = json.dumps(plain(arguments), ensure_ascii=True, default=str)[1:-1]
    return words if len(words) <= limit else words[: limit - 1] + "…"


_MEDIA_SAFE = ("image/", "audio/")


def content(value: Any) -> str:
    """A message's content: text, or its parts (images shown, audio playable, the rest labelled)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return f"<pre>{text_block(value)}</pre>" if value else ""
    return "".join(_part(p) for p in value)


def text_block(value: str) -> str:
    """Multi-line text escaped (newlines kept, other control characters shown)."""
    return "\n".join(text(line) for line in value.split("\n"))


def _part(part: Any) -> str:
    kind = part.type
    if kind == "text":
        return f"<pre>{text_block(part.text)}</pre>"
    if kind == "image":
        src = _media_src(part, "image/")
        if src is None:
            return f'<div class="part">image {text(part.url or "")}</div>'
        return f'<img alt="image" src="{escape(src)}">'
    if kind == "audio":
        src = _media_src(part, "audio/")
        player = "" if src is None else f'<audio controls src="{escape(src)}"></audio>'
        said = "" if part.transcript is None else f"<pre>{text_block(part.transcript)}</pre>"
        return f'<div class="part">audio</div>{player}{said}'
    if kind == "file":
        name = part.filename or part.url or part.file_id or "inline"
        size = "" if part.data is None else f", {human_size(len(part.data) * 3 // 4)}"
        return f'<div class="part">file {text(name)} ({text(part.media_type or "unknown type")}{size})</div>'
    if kind == "refusal":
        return f'<div class="part">refusal</div><pre>{text_block(part.refusal)}</pre>'
    if kind == "reasoning":
        said = part.text or "\n".join(part.summary) or ("(redacted)" if part.redacted else "(encrypted)")
        return f"<details><summary class=part>reasoning</summary><pre>{text_block(said)}</pre></details>"
    return f"<details><summary class=part>{text(kind)} part</summary>{pre_json(part.model_dump(mode='json'))}</details>"


def _media_src(part: Any, media: str) -> str | None:
    """A URL a page may load for an image or audio part: inline data, or an http(s) URL; never a script."""
    if part.data is not None:
        media_type = part.media_type or ""
        if not media_type.startswith(media) or any(c in media_type for c in ";,\"'<> "):
            return None
        return f"data:{media_type};base64,{part.data}"
    url = getattr(part, "url", None)
    if isinstance(url, str) and url.lower().startswith(("https://", "http://", f"data:{media}")):
        return url
    return None


def timeline(invocations: Sequence[Any], width: int = 720) -> str:
    """The tool invocations as a small SVG chart: one bar per call from its start, as long as it ran."""
    if not invocations:
        return '<p id="no-tools">none</p>'
    starts = [t.started_at.timestamp() for t in invocations]
    ends = [s + (t.duration or 0.0) for s, t in zip(starts, invocations, strict=True)]
    first, last = min(starts), max(ends)
    span = max(last - first, 1e-3)
    label_w, row_h = 200, 20
    chart_w = width - label_w - 150
    rows = []
    for i, (t, start) in enumerate(zip(invocations, starts, strict=True)):
        y = i * row_h
        x = label_w + (start - first) / span * chart_w
        bar = max((t.duration or 0.0) / span * chart_w, 2.0)
        colour = STATUS_COLOURS.get(t.status, "#888")
        took = "?" if t.duration is None else f"{t.duration * 1000:.0f} ms"
        tip = f"#{t.seq} {t.tool_name} {t.status} {took}"
        rows.append(
            f'<g class="tool" data-status="{escape(t.status)}"><title>{text(tip)}</title>'
            f'<text x="0" y="{y + 14}">#{t.seq} {text(_clip(t.tool_name, 24))}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{bar:.1f}" height="{row_h - 8}" rx="2" fill="{colour}"/>'
            f'<text x="{x + bar + 4:.1f}" y="{y + 14}" fill="#555">{escape(took)} · '
            f"{escape(t.status)}</text></g>"
        )
    height = len(invocations) * row_h + 4
    return (
        f'<svg class="timeline" id="timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="tool invocations">{"".join(rows)}</svg>'
    )


def _clip(name: str, limit: int) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


# -- write pages ---------------------------------------------------------------------------------------


def confirm_delete(key: str, row: SessionRow, *, token: str) -> str:
    """The confirmation step before a deletion."""
    what = "agent session (with its history and tool calls)" if row.kind == AGENT else "bot session"
    return (
        f"<h1>Delete {text(key)}?</h1>"
        f"<p>This removes the {what} from the store for good ({human_size(row.size)}).</p>"
        '<form method="post" action="/delete">'
        f'<input type="hidden" name="key" value="{escape(key)}">'
        f'<input type="hidden" name="token" value="{escape(token)}">'
        '<button type="submit" class="danger" id="confirm-delete">Delete it</button> '
        f'<a href="{session_link(key)}" id="cancel">cancel</a></form>'
    )


def edit_form(key: str, source: str, etag: str, *, token: str, error: str | None = None) -> str:
    """The JSON editor of a bot session; ``error`` explains why the last try was refused."""
    problem = "" if error is None else f'<div class="error-box" id="edit-error">{text_block(error)}</div>'
    return (
        f"<h1>Edit {text(key)}</h1>{problem}"
        '<div class="notice" id="changed" hidden>This session changed since you opened it; saving will be '
        "refused. Reload to edit the newest version.</div>"
        '<form method="post" action="/edit">'
        f'<input type="hidden" name="key" value="{escape(key)}">'
        f'<input type="hidden" name="etag" value="{escape(etag)}">'
        f'<input type="hidden" name="token" value="{escape(token)}">'
        f'<textarea name="value" id="value" spellcheck="false">{escape(source)}</textarea>'
        '<p><button type="submit" id="save">Save</button> '
        f'<a href="{session_link(key)}">cancel</a></p></form>'
    )


def message_page(heading: str, message: str) -> str:
    """A page that only says something (a refusal, an error, a deletion done)."""
    return f'<h1>{escape(heading)}</h1><p id="message">{text_block(message)}</p><p><a href="/">all sessions</a></p>'


def watch_script(poll: str, etag: str, *, reload: bool, interval_ms: int) -> str:
    """Polls the JSON at ``poll`` for its etag; on a change reloads the page (or shows the ``#changed`` notice).

    A reload waits while the operator is typing in a field of the page.
    """
    act = "location.reload()" if reload else "document.getElementById('changed').hidden=false"
    url = json.dumps(poll)
    return (
        f"(function(){{var etag={json.dumps(etag)};var busy=false;setInterval(function(){{"
        f"var f=document.activeElement;if(busy||({json.dumps(reload)}&&f&&/^(INPUT|SELECT|TEXTAREA)$/.test(f.tagName)))"
        f"return;busy=true;fetch({url},{{cache:'no-store'}}).then(function(r){{return r.json()}})"
        f".then(function(d){{if(d.etag!==etag){{etag=d.etag;{act}}}}}).catch(function(){{}})"
        f".finally(function(){{busy=false}})}},{interval_ms})}})();"
    )
