"""A card's Markdown as safe HTML: headings, paragraphs, lists, fenced code and inline code,
emphasis and links to http(s) only. Everything is escaped first; no raw HTML passes."""

from __future__ import annotations

import re

from suanli.ui.html import e

_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text: str) -> str:
    out = e(text)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<b>\1</b>", out)
    return _LINK.sub(r'<a href="\2" rel="nofollow noopener">\1</a>', out)


def render(text: str) -> str:
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append(f"<pre class=spec>{e(chr(10).join(code))}</pre>")
                code = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
        elif m := re.match(r"(#{1,6})\s+(.*)", stripped):
            flush()
            level = min(len(m.group(1)) + 1, 6)  # (the page's own title is the h1)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif m := re.match(r"[-*]\s+(.*)", stripped):
            if para:
                flush()
            items.append(m.group(1))
        elif not stripped:
            flush()
        else:
            if items:
                flush()
            para.append(stripped)
    if code is not None:
        out.append(f"<pre class=spec>{e(chr(10).join(code))}</pre>")
    flush()
    return "".join(out)
