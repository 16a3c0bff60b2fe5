"""Small shared helpers: the ``UNSET`` sentinel, secret redaction and optional imports."""

from __future__ import annotations
import __future__

import enum
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

if TYPE_CHECKING:
    from typing import TypeGuard

    import pydantic

__all__ = ["UNSET", "Unset", "UnsetType", "is_model_class", "is_model_instance", "is_set", "redact", "require"]


class UnsetType(enum.Enum):
    """Type of :data:`UNSET`: a parameter the caller did not give (``None`` stays a value)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> Literal[False]:
        return False


UNSET: Final = UnsetType.UNSET
"""Marks a keyword argument that was not given, so ``None`` keeps its own meaning."""

Unset = Literal[UnsetType.UNSET]

T = TypeVar("T")


def is_set(value: T | Unset) -> bool:
    """True when ``value`` is not :data:`UNSET`."""
    return value is not UNSET


# Provider key shapes (OpenAI sk-..., Anthropic sk-ant-..., generic bearer tokens) and
# `key=value` style secrets. Matching is deliberately broad: a masked false positive is cheap.
_SECRET_PATTERNS: Final = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
)


def redact(text: str) -> str:
    """Mask anything that looks like an API key or bearer token in ``text``.

    >>> redact("Incorrect API key provided: sk-abc123456789")
    'Incorrect API key provided: sk-***'
    """
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "***", text)
        else:
            text = pattern.sub(lambda m: m.group(0)[:3] + "***", text)
    return text


def mask_key(key: str | None) -> str:
    """A short, safe rendering of a secret for reprs: ``'sk-...abcd'`` style, or ``None``."""
    if not key:
        return "None"
    return f"'{key[:3]}...{key[-2:]}'" if len(key) > 12 else "'***'"


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import an optional dependency or raise ``MissingDependencyError`` with the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        from ._errors import MissingDependencyError

        pkg = package or module.split(".", maxsplit=1)[0]
        raise MissingDependencyError(
            f"{pkg!r} is required for this feature but is not installed; "
            f'install it with: pip install "promptkit[{extra}]"'
        ) from exc


# pydantic costs tens of milliseconds to import. A model class or instance can exist only once
# ``pydantic.main`` is loaded, so these checks look there instead of importing pydantic.


def is_model_class(obj: Any) -> TypeGuard[type[pydantic.BaseModel]]:
    """Whether ``obj`` is a pydantic model class, without importing pydantic."""
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(obj, type) and issubclass(obj, main.BaseModel)


def is_model_instance(obj: Any) -> TypeGuard[pydantic.BaseModel]:
    """Whether ``obj`` is a pydantic model instance, without importing pydantic."""
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(obj, main.BaseModel)


# Where each published object was defined, before :func:`publish_one` gave it its public path
# (doctest and similar tools that match objects to the module defining them read it).
_DEFINED_IN: dict[int, str] = {}


def _is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def publish_one(package: str, value: T) -> T:
    """Give a class or function re-exported by ``package`` that public path as its ``__module__``.

    Reprs, ``help()`` and tracebacks then show ``promptkit.ParseError`` rather than the private
    ``promptkit._errors.ParseError``, and pickle finds the class where users import it. Only objects
    defined under a private module are changed; ones already on a public path keep it.

    >>> from promptkit._errors import ParseError
    >>> ParseError.__module__
    'promptkit'
    """
    if _is_private(package):  # a private package's re-exports get their public path from promptkit
        return value
    module = getattr(value, "__module__", None)
    definition = isinstance(value, type) or (callable(value) and hasattr(value, "__globals__"))
    root = package.split(".", maxsplit=1)[0] + "."
    if definition and isinstance(module, str) and module.startswith(root) and _is_private(module):
        _DEFINED_IN.setdefault(id(value), module)
        try:
            value.__module__ = package
        except (AttributeError, TypeError):  # pragma: no cover - a builtin type: leave it be
            pass
    return value


def publish(package: str, names: Iterable[str], namespace: Mapping[str, Any]) -> None:
    """:func:`publish_one` for each of ``names`` already present in ``namespace`` (a package's globals)."""
    for name in names:
        if name in namespace:
            publish_one(package, namespace[name])


def defined_in(value: object) -> str | None:
    """The module that defined ``value`` (its ``__module__`` before it was published)."""
    return _DEFINED_IN.get(id(value), getattr(value, "__module__", None))


def lazy_attributes(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that import ``table``'s names on first access.

    ``table`` maps a public name to the (relative) module defining it; a loaded name is stored in
    ``namespace`` (the package's globals), so each is imported once, and published under
    ``package`` (see :func:`publish_one`). ``__dir__`` leaves out ``__future__`` feature flags
    (``from __future__ import annotations`` binds ``annotations``), which are no part of the API.
    """

    def getattr_(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = publish_one(package, getattr(importlib.import_module(module, package), name))
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        names = {n for n, v in namespace.items() if not isinstance(v, __future__._Feature)}
        return sorted(names | set(table))

    return getattr_, dir_
