"""The backend contract: the ``Backend`` protocol, ``BaseBackend``, ``Request`` and ``Params``.

Every backend, real or fake, offers ``complete``/``acomplete``/``stream``/``astream`` with the same
keyword parameters, and the same four at the request level (``complete_request`` ...) on a
validated :class:`Request`. ``BaseBackend`` validates parameters once in ``build_request``, so a
concrete backend only implements ``_complete``/``_acomplete``/``_stream``/``_astream``, and
wrappers override only the request level.

>>> from promptkit.testing import MockBackend
>>> with MockBackend(["4"]) as llm:
...     llm.complete("2+2?", temperature=0).text
'4'
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

from .._errors import ConfigurationError, UnsupportedCapabilityError, UnsupportedParameterError
from .._messages import Chunk, Completion, ImagePart, Message, MessagesLike, TextPart, coerce_messages
from .._utils import redact
from ._preview import RequestPreview, neutral_body, preview_of
from ._streams import AsyncStream, Stream

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = [
    "ALL_PARAMS",
    "COMMON_PARAMS",
    "Constraint",
    "DIGEST_VERSION",
    "Backend",
    "BaseBackend",
    "OutputSchema",
    "Params",
    "Request",
    "validate_params",
]


class OutputSchema(TypedDict):
    """A request for the provider's native structured output: a JSON schema the reply must match.

    ``schema`` is already in the strict form providers accept (every property required,
    ``additionalProperties: false``); ``name`` is a short identifier for it.
    """

    name: str
    schema: Mapping[str, Any]
    strict: bool


class Constraint(TypedDict, total=False):
    """What a reply must look like, for a server's constrained decoding: exactly one key.

    ``json`` is a JSON schema, ``regex`` a regular expression the whole reply matches, ``choice``
    the labels the reply is one of, ``grammar`` a context-free grammar in the server's syntax.
    Parsers describe theirs (``ChoiceParser.constraint()``); a backend that can enforce it lists
    ``constraint`` in ``supported_params``. The reply is still parsed and validated.

    >>> from promptkit import ChoiceParser
    >>> ChoiceParser(["yes", "no"]).constraint()
    {'choice': ['yes', 'no']}
    """

    json: Mapping[str, Any]
    regex: str
    choice: Sequence[str]
    grammar: str


CONSTRAINT_KINDS = ("json", "regex", "choice", "grammar")


class Params(TypedDict, total=False):
    """The keyword parameters every backend method accepts.

    ``timeout`` is one total deadline in seconds for the whole call, retries included.
    ``output_schema`` asks for native structured output; only backends that list it in
    ``supported_params`` accept it; so does ``constraint`` (a :class:`Constraint` for a server's
    constrained decoding). ``extra`` passes provider-specific fields through unchanged
    (e.g. ``{"logprobs": True}``); a backend that cannot pass extras through rejects it.
    """

    temperature: float
    max_tokens: int
    stop: str | Sequence[str]
    seed: int
    top_p: float
    timeout: float
    output_schema: OutputSchema
    constraint: Constraint
    extra: Mapping[str, Any]


ALL_PARAMS: frozenset[str] = frozenset(Params.__annotations__)
COMMON_PARAMS: frozenset[str] = ALL_PARAMS - {"output_schema", "constraint"}
"""What a backend supports unless it says otherwise; native structured output and constrained
decoding are opt-in."""


DIGEST_VERSION = 1
"""Bumped whenever the digest's canonical form changes, so old cache entries stop matching."""

# Parameters that do not change what the model answers: left out of the digest.
_NOT_IN_DIGEST = frozenset({"timeout"})
# ``extra`` keys that look like credentials or transport settings: left out of the digest, so
# a digest (a cache key, a log line) never holds a key and does not change when a key rotates.
_SECRET_KEY = re.compile(r"(?i)(key|token|secret|passw|auth|cookie|header|credential|bearer|session)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A validated call: messages plus only the parameters the caller actually set.

    ``params`` never contains unset parameters, so a backend forwards exactly what was asked.
    ``backend`` is the name of the backend that built it (``"openai:gpt-4o-mini"``) and
    ``sample`` the index of a sample when one prompt is sent several times on purpose
    (self-consistency), so that caches never merge samples. :attr:`digest` is the request's
    stable identity, the same in every process and on every machine.

    >>> from promptkit.testing import MockBackend
    >>> request = MockBackend().build_request("Hi", {"temperature": 0})
    >>> request.backend, len(request.digest)
    ('mock', 64)
    """

    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    backend: str = ""
    sample: int | None = None
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def digest(self) -> str:
        """A hex SHA-256 of the request's canonical JSON: what identifies it for caches and logs.

        It covers a format version, ``backend``, the messages (roles, text and parts; an inline
        image as the SHA-256 of its bytes), every parameter that changes the output (not
        ``timeout``) and ``sample`` when set. Keys of ``extra`` that look like credentials or
        headers (``api_key``, ``extra_headers``, ...) and string values that look like API keys
        are left out, so a digest never holds a secret.

        >>> Request(messages=(Message("user", "Hi"),)).digest == Request(messages=(Message("user", "Hi"),)).digest
        True
        """
        value = self._digest
        if value is None:
            value = hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()
            object.__setattr__(self, "_digest", value)
        return value

    def canonical_json(self) -> str:
        """The canonical JSON :attr:`digest` hashes: sorted keys, no whitespace, ASCII only."""
        doc: dict[str, Any] = {
            "v": DIGEST_VERSION,
            "backend": self.backend,
            "messages": [_canonical_message(m) for m in self.messages],
            "params": {k: _canonical_param(k, v) for k, v in self.params.items() if k not in _NOT_IN_DIGEST},
        }
        if self.sample is not None:
            doc["sample"] = self.sample
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    def __hash__(self) -> int:
        return int(self.digest[:16], 16)

    def __repr__(self) -> str:
        # ``extra`` may carry headers or keys: the repr (in tracebacks, logs) masks them
        params = {k: _masked(v) if k == "extra" else v for k, v in self.params.items()}
        sample = f", sample={self.sample}" if self.sample is not None else ""
        return f"Request(backend={self.backend!r}, messages={self.messages!r}, params={params!r}{sample})"


def _canonical_message(message: Message) -> dict[str, Any]:
    content = message.content
    doc: dict[str, Any]
    if isinstance(content, str):
        doc = {"role": message.role, "text": content}
    else:
        parts: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                image = {"type": "image", "media_type": part.media_type, **_image_identity(part.url)}
                if part.detail is not None:  # changes what the model sees; absent, old digests stay
                    image["detail"] = part.detail
                parts.append(image)
        doc = {"role": message.role, "parts": parts}
    if message.cache is not None:
        doc["cache"] = message.cache
    return doc


def _image_identity(url: str) -> dict[str, str]:
    """An inline (``data:``) image by the SHA-256 of its bytes; a linked one by its URL."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        raw = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
        return {"sha256": hashlib.sha256(raw).hexdigest()}
    return {"url": url}


def _canonical_param(key: str, value: Any) -> Any:
    if key in ("temperature", "top_p"):
        return float(value)  # 0 and 0.0 are the same request
    if key == "extra":
        return _canonical_extra(value)
    return _canonical_value(value)


def _canonical_extra(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            str(k): _canonical_extra(v)
            for k, v in value.items()
            if not _SECRET_KEY.search(str(k)) and not _looks_secret(v)
        }
    if isinstance(value, (list, tuple)):
        return [_canonical_extra(v) for v in value if not _looks_secret(v)]
    return _canonical_value(value)


def _masked(value: Any) -> Any:
    """``extra`` for display: values under secret-looking keys, and key-like strings, masked."""
    if isinstance(value, Mapping):
        return {str(k): "***" if _SECRET_KEY.search(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return redact(value) if isinstance(value, str) else value


def _looks_secret(value: Any) -> bool:
    return isinstance(value, str) and redact(value) != value


def _canonical_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(f"a request parameter must be a finite number, not {value!r}")
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    raise ConfigurationError(
        f"a request parameter holds a {type(value).__name__}, which has no stable JSON form; "
        "pass JSON values (str, number, bool, None, lists and mappings of them)"
    )


@runtime_checkable
class Backend(Protocol):
    """What :class:`~promptkit.Prompt` needs from a model: four ways to ask it one question.

    ``complete``/``acomplete``/``stream``/``astream`` take messages and keyword parameters.
    Underneath, every backend offers the same four at the request level: ``build_request``
    validates once into a :class:`Request`, and ``complete_request`` and its twins send one.
    Wrappers (cache, fallback, rate limits, recording) override only the request level.
    """

    @property
    def name(self) -> str:
        """A short identifier such as ``"openai:gpt-4o-mini"`` or ``"mock"``."""
        ...

    @property
    def supported_params(self) -> frozenset[str]:
        """The :class:`Params` names this backend accepts."""
        ...

    def build_request(self, messages: MessagesLike, params: Mapping[str, Any] | None = None) -> Request: ...

    def complete_request(self, request: Request) -> Completion: ...

    async def acomplete_request(self, request: Request) -> Completion: ...

    def stream_request(self, request: Request) -> Stream: ...

    def astream_request(self, request: Request) -> AsyncStream: ...

    def complete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion: ...

    async def acomplete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion: ...

    def stream(self, messages: MessagesLike, **params: Unpack[Params]) -> Stream: ...

    def astream(self, messages: MessagesLike, **params: Unpack[Params]) -> AsyncStream: ...


def _check_number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")
    return value


def validate_params(params: Mapping[str, Any], *, supported: frozenset[str], backend: str) -> dict[str, Any]:
    """Check names, types and ranges of ``params``; return them normalised (``stop`` as a tuple)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in ALL_PARAMS and key not in supported:
            raise UnsupportedParameterError(
                key, backend, hint=f"known parameters: {', '.join(sorted(ALL_PARAMS | supported))}"
            )
        if key not in supported:
            raise UnsupportedParameterError(key, backend)
        if key == "temperature":
            value = _check_number(key, value, low=0.0, high=2.0)
        elif key == "top_p":
            value = _check_number(key, value, low=0.0, high=1.0)
        elif key in ("max_tokens", "seed"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"{key} must be an int, not {value!r}")
            if key == "max_tokens" and value < 1:
                raise ConfigurationError(f"max_tokens must be >= 1, got {value}")
        elif key == "stop":
            seq = (value,) if isinstance(value, str) else tuple(value)
            if not seq or not all(isinstance(s, str) and s for s in seq):
                raise ConfigurationError(f"stop must be a non-empty str or a sequence of them, not {value!r}")
            value = seq
        elif key == "timeout":
            value = _check_number(key, value, low=0.0)
            if value == 0:
                raise ConfigurationError("timeout must be > 0 seconds")
        elif key == "output_schema":
            if not isinstance(value, Mapping) or not {"name", "schema"} <= set(value):
                raise ConfigurationError("output_schema must be a mapping with 'name' and 'schema'")
            value = MappingProxyType({"strict": True, **value})
        elif key == "constraint":
            value = _check_constraint(value)
        elif key == "extra":
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"extra must be a mapping of provider fields, not {value!r}")
            value = MappingProxyType(dict(value))
        out[key] = value
    if "constraint" in out and "output_schema" in out:
        raise ConfigurationError("give constraint or output_schema, not both: each constrains the whole reply")
    return out


def _check_constraint(value: Any) -> Mapping[str, Any]:
    """A :class:`Constraint` checked (one known key, a value of its type) and made read-only."""
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in CONSTRAINT_KINDS:
        raise ConfigurationError(
            f"constraint must be a mapping with exactly one of {', '.join(CONSTRAINT_KINDS)}, not {value!r}"
        )
    ((kind, given),) = value.items()
    if kind == "json":
        ok = isinstance(given, Mapping)
    elif kind == "choice":
        ok = (
            isinstance(given, Sequence)
            and not isinstance(given, str)
            and len(given) > 0
            and all(isinstance(c, str) and c for c in given)
        )
        given = tuple(given) if ok else given
    else:
        ok = isinstance(given, str) and bool(given)
    if not ok:
        wanted = {"json": "a JSON schema mapping", "choice": "a non-empty list of non-empty labels"}
        raise ConfigurationError(f"constraint {kind!r} must be {wanted.get(kind, 'a non-empty string')}, not {given!r}")
    return MappingProxyType({kind: given})


class BaseBackend:
    """Validation, async defaults and context management shared by all backends.

    Subclasses set ``_supported_params`` (on the class or the instance; overriding
    ``supported_params`` with a class attribute works too) and implement ``_complete`` (and,
    where they can, ``_acomplete``, ``_stream`` and ``_astream``) on a validated
    :class:`Request`. Anything not implemented raises
    :class:`~promptkit.UnsupportedCapabilityError` naming the class. ``complete(messages,
    **params)`` is ``complete_request(build_request(messages, params))``, and likewise for the
    other three.

    >>> class Echo(BaseBackend):
    ...     def _complete(self, request):
    ...         return Completion(text=request.messages[-1].text)
    >>> Echo().complete("ping").text
    'ping'
    """

    _supported_params: frozenset[str] = COMMON_PARAMS

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def supported_params(self) -> frozenset[str]:
        """The :class:`Params` names this backend accepts; anything else is refused up front."""
        return self._supported_params

    # -- the request level --------------------------------------------------------------------
    def build_request(self, messages: MessagesLike, params: Mapping[str, Any] | None = None) -> Request:
        """Validate messages and params into a :class:`Request` without sending it."""
        clean = validate_params(params or {}, supported=self.supported_params, backend=type(self).__name__)
        return Request(messages=coerce_messages(messages), params=MappingProxyType(clean), backend=self.name)

    def complete_request(self, request: Request) -> Completion:
        """Send a built :class:`Request` and return the whole reply."""
        return self._complete(request)

    async def acomplete_request(self, request: Request) -> Completion:
        """Async :meth:`complete_request`."""
        return await self._acomplete(request)

    def stream_request(self, request: Request) -> Stream:
        """Send a built :class:`Request` and return a :class:`Stream` of text deltas."""
        return Stream(self._stream(request), backend=self.name)

    def astream_request(self, request: Request) -> AsyncStream:
        """Async :meth:`stream_request`."""
        return AsyncStream(self._astream(request), backend=self.name)

    # -- previews -------------------------------------------------------------------------------
    def preview_request(self, request: Request, *, stream: bool = False) -> RequestPreview:
        """What sending ``request`` would send, without a network call.

        This default, for backends without a wire format, shows the request itself: its messages
        and parameters (``stream`` set when asked for), with an approximate token count. Provider
        backends override it with the exact URL, headers and JSON body.
        """
        body = neutral_body(request)
        if stream:
            body["stream"] = True
        return preview_of(request, body=body, model=None)

    def preview(self, messages: MessagesLike, *, stream: bool = False, **params: Unpack[Params]) -> RequestPreview:
        """The :class:`~promptkit.backends.RequestPreview` of ``complete(messages, **params)``
        (of ``stream(...)`` with ``stream=True``), without sending anything."""
        return self.preview_request(self.build_request(messages, params), stream=stream)

    # -- several choices from one request (optional) -------------------------------------------
    @property
    def max_choices(self) -> int:
        """How many replies one request can draw (the provider's ``n``); 1 when it draws one.

        A backend above 1 implements :meth:`complete_choices`; self-consistency then sends its
        samples as one request, paying for the prompt once.
        """
        return 1

    def complete_choices(self, request: Request, n: int) -> list[Completion]:
        """Up to ``n`` replies to one request, the first carrying the request's whole usage.

        A server that ignores ``n`` may return fewer; the caller asks for the rest separately.
        """
        raise UnsupportedCapabilityError(f"{type(self).__name__} draws one reply per request (max_choices is 1)")

    async def acomplete_choices(self, request: Request, n: int) -> list[Completion]:
        """Async :meth:`complete_choices`."""
        import asyncio  # already loaded by whoever runs this coroutine; kept off import time

        return await asyncio.to_thread(self.complete_choices, request, n)

    # -- the message level --------------------------------------------------------------------
    def complete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion:
        """Send ``messages`` and return the whole reply."""
        return self.complete_request(self.build_request(messages, params))

    async def acomplete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion:
        """Async :meth:`complete`."""
        return await self.acomplete_request(self.build_request(messages, params))

    def stream(self, messages: MessagesLike, **params: Unpack[Params]) -> Stream:
        """Send ``messages`` and return a :class:`Stream` of text deltas."""
        return self.stream_request(self.build_request(messages, params))

    def astream(self, messages: MessagesLike, **params: Unpack[Params]) -> AsyncStream:
        """Async :meth:`stream`: ``async for delta in backend.astream(...)``."""
        return self.astream_request(self.build_request(messages, params))

    # -- what subclasses implement ------------------------------------------------------------
    def _complete(self, request: Request) -> Completion:
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support complete()")

    async def _acomplete(self, request: Request) -> Completion:
        # Default: run the sync path in a worker thread, so the event loop is never blocked.
        import asyncio  # already loaded by whoever runs this coroutine; kept off import time

        return await asyncio.to_thread(self._complete, request)

    def _stream(self, request: Request) -> Iterator[Chunk]:
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support streaming")

    def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        # Subclasses write this as an ``async def`` generator; the default refuses at once.
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support async streaming")

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release clients and connections. Called by ``with backend:``."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _repr_html_(self) -> str:
        """Name, model, provider and the wrappers' chain, for notebooks (no secrets shown)."""
        from ._display import backend_html

        return backend_html(self)
