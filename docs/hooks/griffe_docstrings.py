"""Render promptkit's docstrings (reST-flavoured prose and doctests) as Markdown for the API reference.

The docstrings are written for ``help()`` and doctest: ``>>>`` examples, ``::`` literal blocks
and roles such as ``:class:`~promptkit.Prompt```. mkdocstrings renders docstrings as Markdown,
where a ``>>>`` line would become a nested quote, so this griffe extension rewrites each
docstring before it is rendered: doctest examples and literal blocks become fenced code, a role
becomes inline code. The source docstrings stay as they are; ``tests/test_docs.py`` tests the
rewrite.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const|ref|term):`!?([^`]+)`")
_DOCTEST_FLAGS = re.compile(r"\s*#\s*doctest:.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _role_text(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    explicit = re.fullmatch(r"(.+?)\s*<(.+)>", target)
    if explicit:
        return f"`{explicit.group(1)}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def _fenced(lines: list[str], language: str) -> list[str]:
    base = min((_indent(line) for line in lines if line.strip()), default=0)
    return ["", f"```{language}", *(line[base:] for line in lines), "```", ""]


def to_markdown(text: str) -> str:
    r"""A docstring's reST-flavoured text as Markdown: doctests and ``::`` blocks fenced, roles as code.

    >>> print(to_markdown("Use :class:`~promptkit.Prompt`.\n\n>>> 1 + 1\n2"))
    Use `Prompt`.
    <BLANKLINE>
    ```pycon
    >>> 1 + 1
    2
    ```
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if in_fence:
            out.append(line)
            i += 1
            continue
        if line.lstrip().startswith(">>>"):
            block: list[str] = []
            while i < len(lines) and lines[i].strip():
                block.append(_DOCTEST_FLAGS.sub("", lines[i]))
                i += 1
            out.extend(_fenced(block, "pycon"))
            continue
        if line.rstrip().endswith("::") and not line.rstrip().endswith(":::"):
            base = _indent(line)
            head = line.rstrip()[:-2].rstrip()
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                if head:
                    out.append(_ROLE.sub(_role_text, head) + ":")
                out.extend(_fenced(block, "text"))
                i = j
                continue
        out.append(_ROLE.sub(_role_text, line))
        i += 1
    return "\n".join(_single_blank_lines(out)).strip("\n")


def _single_blank_lines(lines: list[str]) -> list[str]:
    """``lines`` without a blank line repeated outside fenced code (the fences add their own)."""
    kept: list[str] = []
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and not line.strip() and kept and not kept[-1].strip():
            continue
        kept.append(line)
    return kept


try:  # griffe is installed with the docs extra; the function above is tested without it
    import griffe
except ImportError:  # pragma: no cover - only the docs build loads the extension
    pass
else:

    class MarkdownDocstrings(griffe.Extension):
        """Rewrite every docstring with :func:`to_markdown` once griffe has built the object tree."""

        def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value)
