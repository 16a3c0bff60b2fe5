"""Compiling and rendering in the sandbox, with every failure turned into a ``TemplateError``."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError

from .._errors import (
    ImageError,
    TemplateError,
    TemplateLimitError,
    TemplateSecurityError,
    TemplateSyntaxError,
    UndefinedVariableError,
)
from ._limits import BUDGET, Budget, LimitExceededError, TemplateLimits, bounded_concat
from ._sandbox import MARK, PromptEnvironment

__all__ = ["Compiled", "Locator", "compile_source", "find_variables", "render_jinja", "wrap_render_error"]

Locator = Callable[[int | None], tuple[str | None, int | None]]
"""Maps a line of the compiled source to the (template label, line) a user should see."""

_SOURCE_FILENAME = "<template>"
_TEMPLATE_FRAMES = ("template", "top-level template code")


def _plain_locator(name: str | None, offset: int = 0) -> Locator:
    """Report ``name`` and the line, shifted by ``offset`` (e.g. a file's front matter)."""
    if not offset:
        return lambda lineno: (name, lineno)
    return lambda lineno: (name, None if lineno is None else lineno + offset)


class Compiled(NamedTuple):
    """A compiled template and whether it is *simple*: no loops, calls, filters, includes or
    checked operators, so nothing in it can amplify its input and it renders without a budget."""

    template: jinja2.Template
    simple: bool
    has_roles: bool


_COUNTED_NODES = (
    nodes.For,
    nodes.Call,
    nodes.Filter,
    nodes.Test,
    nodes.Concat,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.Mul,
    nodes.Pow,
    nodes.Add,
    nodes.Mod,
)


def compile_source(env: PromptEnvironment, source: str, limits: TemplateLimits, locate: Locator) -> Compiled:
    """Compile once (cached per environment and source); errors carry the template and line."""
    if len(source) > limits.max_template_chars:
        label, _ = locate(None)
        raise TemplateLimitError(
            f"template source is {len(source)} characters, over max_template_chars={limits.max_template_chars}",
            template=label,
        )
    try:
        return _compile_cached(env, source)
    except jinja2.TemplateSyntaxError as exc:
        label, line = locate(exc.lineno)
        raise TemplateSyntaxError(f"invalid template syntax: {exc.message}", template=label, lineno=line) from exc
    except (RecursionError, MemoryError, SyntaxError) as exc:
        label, _ = locate(None)
        raise TemplateLimitError(f"template is nested too deeply to compile: {exc}", template=label) from exc
    except Exception as exc:  # e.g. ValueError for an integer literal with too many digits
        label, _ = locate(None)
        raise TemplateSyntaxError(f"invalid template: {type(exc).__name__}: {exc}", template=label) from exc


@functools.lru_cache(maxsize=1024)
def _compile_cached(env: PromptEnvironment, source: str) -> Compiled:
    tree = env.parse(source)
    simple = next(tree.find_all(_COUNTED_NODES), None) is None
    has_roles = any(node.data.startswith(MARK) for node in tree.find_all(nodes.TemplateData))
    return Compiled(env.from_string(tree), simple, has_roles)


def find_variables(env: PromptEnvironment, source: str) -> frozenset[str]:
    """Undeclared variables of ``source`` and of the templates it includes by constant name.

    Without a loader the answer depends on the source alone, so it is computed once per process
    (building the same template inside a function then costs no parse); a library's templates
    can include files that change, so they are read each time.
    """
    if env.loader is None:
        return _variables_cached(env, source)
    return _find_variables(env, source)


@functools.lru_cache(maxsize=1024)
def _variables_cached(env: PromptEnvironment, source: str) -> frozenset[str]:
    return _find_variables(env, source)


def _find_variables(env: PromptEnvironment, source: str) -> frozenset[str]:
    found: set[str] = set()
    seen: set[str] = set()

    def visit(src: str) -> None:
        tree = env.parse(src)
        found.update(meta.find_undeclared_variables(tree))
        if env.loader is None:
            return
        for ref in meta.find_referenced_templates(tree):
            if ref is None or ref in seen:
                continue
            seen.add(ref)
            try:
                sub, _, _ = env.loader.get_source(env, ref)
            except jinja2.TemplateNotFound:
                continue  # reported when rendering
            visit(sub)

    visit(source)
    return frozenset(found)


def _template_lineno(exc: BaseException) -> tuple[str | None, int | None]:
    """The file and line of the innermost template frame (Jinja2 rewrites frames to them)."""
    import traceback  # only on errors

    where: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == _SOURCE_FILENAME or frame.name in _TEMPLATE_FRAMES or frame.name.startswith("block "):
            where = (frame.filename, frame.lineno)
    return where


def wrap_render_error(exc: BaseException, locate: Locator) -> TemplateError:
    """The ``TemplateError`` subclass for any exception raised while rendering."""
    filename, raw_line = _template_lineno(exc)
    if filename is not None and filename != _SOURCE_FILENAME:
        label: str | None = os.path.basename(filename)
        lineno = raw_line
    else:
        label, lineno = locate(raw_line)
    if isinstance(exc, ImageError) and exc.template is None and exc.lineno is None:
        # raised by the image filter or guard, which cannot know where they run
        return ImageError(
            exc.message, variable=exc.variable, limit=exc.limit, provider=exc.provider, template=label, lineno=lineno
        )
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, LimitExceededError):
        return TemplateLimitError(str(exc), template=label, lineno=lineno)
    if isinstance(exc, (RecursionError, MemoryError)):
        return TemplateLimitError(f"render exhausted resources: {type(exc).__name__}", template=label, lineno=lineno)
    if isinstance(exc, jinja2.UndefinedError):
        message = str(exc.message or "")
        if message.startswith("'") and message.endswith("' is undefined"):
            variable = message[1 : -len("' is undefined")]
            return UndefinedVariableError(
                f"missing template variable {variable!r}", variable=variable, template=label, lineno=lineno
            )
        return UndefinedVariableError(message, template=label, lineno=lineno)
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(f"unsafe operation blocked: {exc}", template=label, lineno=lineno)
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(f"included template not found: {exc.name!r}", template=label, lineno=lineno)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f" in {os.path.basename(exc.filename or exc.name or '')}" if (exc.filename or exc.name) else ""
        return TemplateSyntaxError(
            f"invalid template syntax{where}, line {exc.lineno}: {exc.message}", template=label, lineno=lineno
        )
    if isinstance(exc, TypeError) and "no loader" in str(exc):
        return TemplateError(
            "include/import/extends need a loader: build the template from a PromptLibrary",
            template=label,
            lineno=lineno,
        )
    if isinstance(exc, jinja2.TemplateError):
        return TemplateError(f"{type(exc).__name__}: {exc}", template=label, lineno=lineno)
    return TemplateError(f"rendering failed: {type(exc).__name__}: {exc}", template=label, lineno=lineno)


def render_jinja(compiled: Compiled, context: Mapping[str, Any], limits: TemplateLimits, locate: Locator) -> str:
    """Render under a fresh :class:`Budget`; the output is size-checked while it is joined.

    A simple template (see :class:`Compiled`) skips the budget: its output is its text plus its
    values, checked once against ``max_output_chars``.
    """
    jt = compiled.template
    if compiled.simple:
        try:
            try:
                text = "".join(jt.root_render_func(jt.new_context(context)))  # type: ignore[arg-type]
            except Exception:
                jt.environment.handle_exception()
        except Exception as exc:
            raise wrap_render_error(exc, locate) from exc
        if len(text) > limits.max_output_chars:
            label, _ = locate(None)
            raise TemplateLimitError(f"rendered text passed max_output_chars={limits.max_output_chars}", template=label)
        return text
    token = BUDGET.set(Budget(limits))
    try:
        try:
            return bounded_concat(jt.root_render_func(jt.new_context(context)))  # type: ignore[arg-type]
        except Exception:
            jt.environment.handle_exception()
    except Exception as exc:
        raise wrap_render_error(exc, locate) from exc
    finally:
        BUDGET.reset(token)


plain_locator = _plain_locator
