"""Templates: one Jinja2 string (``Template``) or a chat of role messages (``ChatTemplate``).

Templates compile once, render in promptkit's sandbox (Jinja2's immutable sandbox, strict
undefined variables, plus the bounds in :mod:`._sandbox`), and turn every failure into a
:class:`~promptkit.TemplateError` with the template's name and line.

Parts: ``_limits`` (limits and the checks that enforce them), ``_sandbox`` (environment, attribute
policy, role markers), ``_compile`` (compile, render, error
wrapping), ``_inputs`` (declared inputs), ``_template`` (``Template``), ``_chat``
(``ChatTemplate``, ``MessagesPlaceholder``), ``_library`` (``PromptLibrary``), ``_display`` (HTML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._chat import ChatTemplate, MessagesPlaceholder
from ._library import PromptLibrary
from ._limits import TemplateLimits
from ._template import Preview, Template

if TYPE_CHECKING:
    from ._inputs import InputsSpec

__all__ = [
    "ChatTemplate",
    "InputsSpec",
    "MessagesPlaceholder",
    "Preview",
    "PromptLibrary",
    "Template",
    "TemplateLimits",
]


def __getattr__(name: str) -> Any:
    # ``InputsSpec`` names a pydantic type, so it is built only when asked for (pydantic is slow to import).
    if name == "InputsSpec":
        from . import _inputs

        return _inputs.InputsSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
