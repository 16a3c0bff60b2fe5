"""HTML for notebooks: a backend as its name, model, provider and the chain of wrappers around it."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["backend_html"]

_CHAIN_LIMIT = 32  # a wrapper cycle (a bug elsewhere) must not hang a notebook's display


def chain(backend: Any) -> list[Any]:
    """``backend`` and each backend it wraps (through ``inner``), outermost first."""
    out = [backend]
    while len(out) < _CHAIN_LIMIT:
        inner = getattr(out[-1], "inner", None)
        if inner is None or any(inner is b for b in out):
            break
        out.append(inner)
    return out


def _provider(backend: Any) -> str:
    provider = getattr(backend, "provider", None)
    if isinstance(provider, str) and provider:
        return provider
    name = str(getattr(backend, "name", ""))
    return name.split(":", 1)[0]


def backend_html(backend: Any, *, depth: int = 0) -> str:
    """The backend's facts as a small table; a fallback's members each as their own table."""
    layers = chain(backend)
    core = layers[-1]
    facts: list[tuple[str, str]] = [("name", str(backend.name))]
    model = getattr(core, "model", None)
    if model is not None:
        facts.append(("model", str(model)))
    facts.append(("provider", _provider(core)))
    base_url = getattr(core, "base_url", None)
    if isinstance(base_url, str) and base_url:
        facts.append(("base url", base_url))
    if len(layers) > 1:
        facts.append(("wrappers", " → ".join(type(b).__name__ for b in layers)))
    params = getattr(backend, "supported_params", None)
    if params:
        facts.append(("params", ", ".join(sorted(params))))
    rows = "".join(
        f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in facts
    )
    members = getattr(core, "backends", None)
    nested = ""
    if isinstance(members, (list, tuple)) and members and depth < 3:
        items = "".join(f"<li>{backend_html(m, depth=depth + 1)}</li>" for m in members)
        nested = f"<div><small>tried in order:</small><ol style='margin:0'>{items}</ol></div>"
    return f"<div><b>{html.escape(type(backend).__name__)}</b><table>{rows}</table>{nested}</div>"
