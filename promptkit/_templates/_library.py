"""``PromptLibrary``: templates loaded from one folder, one package or a mapping, with includes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jinja2

from .._errors import ConfigurationError, TemplateError
from ._chat import ChatTemplate
from ._limits import DEFAULT_LIMITS, TemplateLimits
from ._sandbox import PromptEnvironment
from ._template import Template

__all__ = ["PromptLibrary"]


class PromptLibrary:
    """Templates that may ``include``/``import``/``extend`` each other, resolved in one place.

    A library is rooted in one folder (``PromptLibrary("prompts")``), a package's data folder
    (:meth:`from_package`) or a mapping of names to sources (:meth:`from_mapping`). Names are
    ``/``-separated paths inside that root; ``..`` and absolute paths are refused, so a template
    can reach nothing outside it. Template names come from your code, never from end users.

    >>> lib = PromptLibrary.from_mapping({
    ...     "preamble.jinja": "You are a careful assistant.",
    ...     "macros.jinja": "{% macro bullet(items) %}{% for i in items %}- {{ i }}\\n{% endfor %}{% endmacro %}",
    ... })
    >>> source = '{% include "preamble.jinja" %}\\n\\n{% import "macros.jinja" as m %}{{ m.bullet(points) }}'
    >>> t = lib.from_string(source)
    >>> print(t.render(points=["a", "b"]))
    You are a careful assistant.
    - a
    - b
    <BLANKLINE>
    """

    def __init__(self, folder: str | os.PathLike[str], *, limits: TemplateLimits | None = None) -> None:
        path = os.fspath(folder)
        if not os.path.isdir(path):
            raise ConfigurationError(f"PromptLibrary folder does not exist: {path!r}")
        self._setup(jinja2.FileSystemLoader(path), limits, f"folder {os.path.basename(os.path.abspath(path))!r}")

    def _setup(self, loader: jinja2.BaseLoader, limits: TemplateLimits | None, label: str) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.environment = PromptEnvironment(loader=loader)
        self._label = label

    @classmethod
    def from_package(
        cls, package: str, folder: str = "prompts", *, limits: TemplateLimits | None = None
    ) -> PromptLibrary:
        """Templates shipped inside an installed package, in its ``folder`` directory."""
        try:
            loader = jinja2.PackageLoader(package, folder)
        except (ValueError, ModuleNotFoundError) as exc:
            raise ConfigurationError(f"cannot load templates from package {package!r}/{folder}: {exc}") from exc
        self = cls.__new__(cls)
        self._setup(loader, limits, f"package {package}/{folder}")
        return self

    @classmethod
    def from_mapping(cls, sources: Mapping[str, str], *, limits: TemplateLimits | None = None) -> PromptLibrary:
        """Templates held in memory, e.g. reusable blocks defined in code."""
        self = cls.__new__(cls)
        self._setup(jinja2.DictLoader(dict(sources)), limits, "mapping")
        return self

    def names(self) -> list[str]:
        """The template names in the library."""
        return sorted(self.environment.list_templates())

    def source(self, name: str) -> str:
        """The source of the template ``name``."""
        loader = self.environment.loader
        assert loader is not None
        try:
            source, _, _ = loader.get_source(self.environment, name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"no template named {name!r} in the library ({self._label})") from exc
        return source

    def template(self, name: str, **options: Any) -> Template:
        """The template ``name`` as a :class:`Template` (``options`` as for ``Template``)."""
        return Template(self.source(name), name=name, library=self, **options)

    def chat(self, name: str, **options: Any) -> ChatTemplate:
        """The template ``name`` as a :class:`ChatTemplate` written with role blocks."""
        return ChatTemplate.from_source(self.source(name), name=name, library=self, **options)

    def from_string(self, source: str, **options: Any) -> Template:
        """A :class:`Template` from ``source`` that can include the library's templates."""
        return Template(source, library=self, **options)

    def chat_from_string(self, source: str, **options: Any) -> ChatTemplate:
        """A :class:`ChatTemplate` from role blocks that can include the library's templates."""
        return ChatTemplate.from_source(source, library=self, **options)

    def __repr__(self) -> str:
        return f"<PromptLibrary {self._label}>"
