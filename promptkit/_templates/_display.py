"""HTML for notebooks: template sources with variables highlighted, previews with values marked."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .._messages import _ROLE_COLOURS
from ._sandbox import HL_END, HL_START

__all__ = ["document", "highlight_source", "highlight_values", "role_block"]

_SPAN = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_STYLES = {
    "{{": "background:#fef3c7;color:#92400e;border-radius:3px",
    "{%": "color:#7c3aed",
    "{#": "color:#9ca3af;font-style:italic",
}
_PRE = "<pre style='white-space:pre-wrap;margin:2px 0 0 1em'>"


def highlight_source(source: str) -> str:
    """Escaped template source with ``{{ }}``, ``{% %}`` and ``{# #}`` spans styled."""
    import html

    out = []
    for i, piece in enumerate(_SPAN.split(source)):
        escaped = html.escape(piece)
        if i % 2:
            escaped = f"<span style='{_STYLES[piece[:2]]}'>{escaped}</span>"
        out.append(escaped)
    return _PRE + "".join(out) + "</pre>"


def highlight_values(text: str) -> str:
    """Escaped rendered text with the values that came from ``{{ }}`` marked."""
    import html

    escaped = html.escape(text)
    escaped = escaped.replace(HL_START, f"<mark style='{_STYLES['{{']}'>").replace(HL_END, "</mark>")
    return _PRE + escaped + "</pre>"


def role_block(role: str | None, body_html: str, *, note: str = "") -> str:
    """One message: the role in its colour (none for a plain template), a note, the body."""
    import html

    if role is None:
        return f"<div style='margin:4px 0'>{body_html}</div>"
    colour = _ROLE_COLOURS.get(role, "#000")
    extra = f" <small style='color:#9ca3af'>{html.escape(note)}</small>" if note else ""
    return f"<div style='margin:4px 0'><b style='color:{colour}'>{html.escape(role)}</b>{extra}{body_html}</div>"


def document(blocks: Iterable[str], *, title: str = "") -> str:
    """The blocks in one ``<div>``, under an optional small title."""
    import html

    head = f"<div style='color:#6b7280;font-size:smaller'>{html.escape(title)}</div>" if title else ""
    return "<div>" + head + "".join(blocks) + "</div>"
