"""``backend("provider:model")``: build a backend from a short string.

Every provider is one row of a table (module, class, extra); the module is imported only when its
row is used, so no SDK is loaded at ``import promptkit``.

>>> backend("mock", replies=["hi"]).complete("hello").text
'hi'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

    from ._contract import Backend

__all__ = ["backend"]


class _Provider(NamedTuple):
    module: str
    cls: str
    extra: str
    needs_model: bool = True
    default_url: str | None = None  # a local server's usual address: ``<model>[@<base_url>]``
    options: tuple[tuple[str, Any], ...] = ()  # constructor defaults of the row, the caller's win


_PROVIDERS: dict[str, _Provider] = {
    "anthropic": _Provider("promptkit.backends.anthropic", "AnthropicBackend", "anthropic"),
    # The test double takes an optional model: "mock" and "mock:<model>" both work.
    "mock": _Provider("promptkit.testing", "MockBackend", "testing", needs_model=False),
    "openai": _Provider("promptkit.backends.openai", "OpenAIBackend", "openai"),
    "openai-compatible": _Provider("promptkit.backends.openai", "OpenAIBackend", "openai"),
    # OpenAI-compatible servers, over the SDK-free chat-completions client, at their default ports.
    "llama.cpp": _Provider(
        "promptkit.backends.openai",
        "OpenAICompatibleBackend",
        "openai-compatible",
        default_url="http://127.0.0.1:8080/v1",
    ),
    "sglang": _Provider(
        "promptkit.backends.openai",
        "OpenAICompatibleBackend",
        "openai-compatible",
        default_url="http://127.0.0.1:30000/v1",
        options=(("constrained_decoding", "sglang"),),
    ),
    "vllm": _Provider(
        "promptkit.backends.openai",
        "OpenAICompatibleBackend",
        "openai-compatible",
        default_url="http://127.0.0.1:8000/v1",
        options=(("constrained_decoding", "vllm"),),
    ),
}

# Model-name prefixes that identify a provider, for the hint when the provider part is missing.
_MODEL_HINTS: tuple[tuple[str, str], ...] = (
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("text-embedding", "openai"),
)


def _provider_module(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise MissingDependencyError(
                f"the {extra!r} backend is not available in this version of promptkit"
            ) from exc
        raise


def _missing_provider(spec: str) -> ConfigurationError:
    known = ", ".join(sorted(_PROVIDERS))
    lowered = spec.lower()
    for prefix, provider in _MODEL_HINTS:
        if lowered.startswith(prefix):
            return ConfigurationError(
                f"backend spec {spec!r} names a model without its provider; did you mean '{provider}:{spec}'? "
                f"(known providers: {known})"
            )
    return ConfigurationError(
        f"backend spec {spec!r} has no provider; write it as 'provider:model', "
        f"e.g. 'openai:{spec}' or 'anthropic:{spec}' (known providers: {known})"
    )


def backend(spec: str, **options: Any) -> Backend:
    """Build a backend from a ``"provider:model"`` string.

    ``"mock"`` gives a :class:`promptkit.testing.MockBackend`; ``"openai:<model>"``,
    ``"anthropic:<model>"`` and ``"openai-compatible:<model>@<base_url>"`` build the real ones
    (their SDKs are optional extras); ``"vllm:<model>"``, ``"sglang:<model>"`` and
    ``"llama.cpp:<model>"`` build an ``OpenAICompatibleBackend`` for that server at its default
    local address, or at ``"...:<model>@<base_url>"``, the first two with their constrained
    decoding on (``constrained_decoding="vllm"`` / ``"sglang"``; pass ``"vllm-guided"`` for vLLM
    before 0.12, or ``None``). ``options`` go to the backend's
    constructor. A bare model name such as ``"gpt-4o"`` is refused with the spelling to use
    (``"openai:gpt-4o"``).

    >>> backend("mock", replies=["hi"]).complete("hello").text
    'hi'
    >>> from promptkit import ConfigurationError
    >>> try:
    ...     backend("gpt-4o")
    ... except ConfigurationError as exc:
    ...     "did you mean 'openai:gpt-4o'" in str(exc)
    True
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigurationError(f"backend spec must be a non-empty string like 'openai:gpt-4o-mini', not {spec!r}")
    provider, sep, model = spec.partition(":")
    entry = _PROVIDERS.get(provider)
    if entry is None:
        if not sep:
            raise _missing_provider(spec)
        known = ", ".join(sorted(_PROVIDERS))
        raise ConfigurationError(f"unknown backend provider {provider!r} in {spec!r}; known providers: {known}")
    if entry.needs_model and (not sep or not model):
        raise ConfigurationError(f"backend spec {spec!r} needs a model, e.g. '{provider}:<model>'")
    if sep and not model:
        raise ConfigurationError(
            f"backend spec {spec!r} has an empty model; write '{provider}' or '{provider}:<model>'"
        )
    module = _provider_module(entry.module, entry.extra)
    cls = getattr(module, entry.cls)
    if provider == "openai-compatible":
        model, at, base_url = model.rpartition("@")
        if not at or not model or not base_url:
            raise ConfigurationError(f"backend spec {spec!r} must look like 'openai-compatible:<model>@<base_url>'")
        options.setdefault("base_url", base_url)
    elif entry.default_url is not None:
        head, at, base_url = model.rpartition("@")
        if at and (not head or not base_url):
            raise ConfigurationError(f"backend spec {spec!r} must look like '{provider}:<model>[@<base_url>]'")
        model = head if at else model
        options.setdefault("base_url", base_url if at else entry.default_url)
    for name, value in entry.options:
        options.setdefault(name, value)
    if model:
        options["model"] = model
    result: Backend = cls(**options)
    return result
