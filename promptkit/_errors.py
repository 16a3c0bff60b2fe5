"""The promptkit exception tree. Every error promptkit raises is a ``PromptkitError``.

::

    PromptkitError
    ├── ConfigurationError                 bad argument or setup (also ValueError)
    │   ├── UnsupportedParameterError      a backend was given a param it cannot honour
    │   ├── UnsupportedCapabilityError     a backend cannot do what was asked (e.g. stream)
    │   └── MissingDependencyError         an optional package is not installed (also ImportError)
    ├── TemplateError                      anything wrong with a template, with name and line
    │   ├── TemplateSyntaxError            the source does not compile
    │   ├── UndefinedVariableError         a variable the template uses was not given
    │   ├── UnexpectedVariableError        a variable was given that the template does not use
    │   ├── TemplateInputError             inputs failed the template's declared schema
    │   ├── TemplateSecurityError          the sandbox refused an operation
    │   ├── TemplateLimitError             a size, loop or time bound was exceeded
    │   └── ImageError                     an image is unreadable, unsupported or too large (also ConfigurationError)
    ├── TokenizerError                     token counting is impossible (e.g. no encoding files)
    │   └── TokenBudgetError               a prompt cannot fit its token budget, even truncated
    ├── ParseError                         a reply did not match what the parser expects
    ├── ExampleError                       bad few-shot examples or selector configuration
    ├── SpendingCapError                   a batch's spending cap stopped a request before it was sent
    ├── EvaluationError                    an evaluation is misconfigured (dataset, metric, report)
    │   ├── DatasetError                   a dataset cannot be read or its rows are malformed
    │   ├── MetricError                    a metric failed or returned a score outside [0, 1]
    │   └── EvalGateError                  a CI gate failed: a threshold or a regression (also AssertionError)
    ├── GuardError                         a test safeguard stopped a call (never a BackendError)
    │   ├── RealBackendBlockedError        a real provider was called under test
    │   ├── ScriptExhaustedError           a MockBackend ran out of scripted replies
    │   └── CassetteMissError              a replayed test sent a request its cassette lacks
    └── BackendError                       a model call failed (status, provider, retryable, ...)
        ├── AuthenticationError            401 / 403: bad or missing credentials          not retryable
        ├── BadRequestError                400 / 404 / 422: the request itself is wrong   not retryable
        ├── RateLimitError                 429 or a provider's overload signal            retryable
        ├── ServerError                    5xx                                            retryable
        ├── BackendConnectionError         the connection failed or was reset             retryable
        ├── BackendTimeoutError            a timeout or deadline (also TimeoutError)      retryable
        │   └── BatchExpiredError          a provider batch ended before this item ran    retryable
        ├── BatchCancelledError            the provider batch was cancelled before it ran retryable
        ├── IncompleteStreamError          a stream ended early; keeps the partial text   retryable
        ├── ResponseError                  a reply that cannot be understood (malformed)  not retryable
        └── FallbackError                  every backend of a FallbackBackend failed; keeps each error

``retryable`` says whether sending the same request again could succeed; the retry layer reads it
(a timeout of the call's own total deadline is marked not retryable on the instance). The guard
errors sit outside ``BackendError`` on purpose: a fallback, a batch or a retry that handles
provider failures must never swallow a test's safeguard.

Errors never carry secrets: messages pass through :func:`promptkit._utils.redact`, and pickling a
``BackendError`` drops the original cause, which may hold request headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._utils import redact

__all__ = [
    "AuthenticationError",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "BatchCancelledError",
    "BatchExpiredError",
    "CassetteMissError",
    "ConfigurationError",
    "DatasetError",
    "EvalGateError",
    "EvaluationError",
    "ExampleError",
    "FallbackError",
    "GuardError",
    "ImageError",
    "IncompleteStreamError",
    "MetricError",
    "MissingDependencyError",
    "ParseError",
    "PromptkitError",
    "RateLimitError",
    "RealBackendBlockedError",
    "ResponseError",
    "ScriptExhaustedError",
    "ServerError",
    "SpendingCapError",
    "TemplateError",
    "TemplateInputError",
    "TemplateLimitError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TokenBudgetError",
    "TokenizerError",
    "UndefinedVariableError",
    "UnexpectedVariableError",
    "UnsupportedCapabilityError",
    "UnsupportedParameterError",
]


class PromptkitError(Exception):
    """Root of every error promptkit raises; catch this to catch them all."""

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the public message and attributes only; never pickle ``__cause__``,
        # whose SDK exception may hold request headers with an API key.
        state = {k: v for k, v in self.__dict__.items() if k not in ("__cause__", "__context__")}
        return (_rebuild, (type(self), self.message, state))


def _rebuild(cls: type[PromptkitError], message: str, state: dict[str, Any]) -> PromptkitError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigurationError(PromptkitError, ValueError):
    """An argument or setting is invalid; the message names it."""


class UnsupportedParameterError(ConfigurationError):
    """A backend was given a parameter it does not support.

    ``param`` is the parameter's name and ``backend`` the backend class name.
    """

    def __init__(self, param: str, backend: str, *, hint: str = "") -> None:
        self.param = param
        self.backend = backend
        msg = f"{backend} does not support the parameter {param!r}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class UnsupportedCapabilityError(ConfigurationError):
    """A backend cannot perform the requested operation (e.g. streaming)."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is missing; the message gives the exact ``pip install`` line."""


class TemplateError(PromptkitError):
    """A template failed to compile, validate or render.

    ``template`` is the template's name (or ``None``) and ``lineno`` the 1-based line, when known.
    """

    def __init__(self, message: str, *, template: str | None = None, lineno: int | None = None) -> None:
        self.template = template
        self.lineno = lineno
        where = ""
        if template is not None or lineno is not None:
            name = template if template is not None else "<template>"
            where = f" (in {name}" + (f", line {lineno})" if lineno is not None else ")")
        super().__init__(message + where)


class TemplateSyntaxError(TemplateError):
    """The template source is not valid Jinja2."""


class UndefinedVariableError(TemplateError):
    """A variable used by the template was not provided. ``variable`` names it."""

    def __init__(
        self,
        message: str,
        *,
        variable: str | None = None,
        template: str | None = None,
        lineno: int | None = None,
    ) -> None:
        self.variable = variable
        super().__init__(message, template=template, lineno=lineno)


class UnexpectedVariableError(TemplateError):
    """Values were given that the template never uses.

    ``variables`` lists them and ``known`` the variables the template does use.
    """

    def __init__(self, variables: list[str], *, template: str | None = None, known: Iterable[str] = ()) -> None:
        self.variables = variables
        self.known = sorted(known)
        names = ", ".join(repr(v) for v in variables)
        uses = ", ".join(repr(v) for v in self.known) if self.known else "no variables"
        super().__init__(
            f"unexpected template variable(s) {names} (the template uses {uses}); "
            "pass allow_extra=True to ignore extra values",
            template=template,
        )


class TemplateInputError(TemplateError):
    """Inputs failed validation against the template's declared input schema."""


class TemplateSecurityError(TemplateError):
    """The sandbox refused an unsafe operation (e.g. access to a private attribute)."""


class TemplateLimitError(TemplateError):
    """Rendering exceeded a configured bound (output size, loop iterations, time, ...)."""


class ImageError(TemplateError, ConfigurationError):
    """An image cannot be sent: unreadable, not an image, in an unsupported format, or over a
    provider's size limit.

    ``variable`` names the template variable it came from (``None`` when unknown), ``limit`` the
    size limit in bytes it broke and ``provider`` whose limit that is (both ``None`` otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        variable: str | None = None,
        limit: int | None = None,
        provider: str | None = None,
        template: str | None = None,
        lineno: int | None = None,
    ) -> None:
        self.variable = variable
        self.limit = limit
        self.provider = provider
        super().__init__(message, template=template, lineno=lineno)


class TokenizerError(PromptkitError):
    """Tokens cannot be counted (unknown model, or encoding files unavailable offline)."""


class TokenBudgetError(TokenizerError):
    """A prompt exceeds its token budget even with everything that may go cut or dropped.

    ``budget`` is the limit and ``minimum`` the tokens the prompt needs at the least; ``parts``
    names what cannot be cut, with its tokens (``(name, tokens)`` pairs, for a fitted prompt).
    """

    def __init__(self, message: str, *, budget: int, minimum: int, parts: tuple[tuple[str, int], ...] = ()) -> None:
        self.budget = budget
        self.minimum = minimum
        self.parts = parts
        super().__init__(message)


class ExampleError(PromptkitError):
    """Few-shot examples, pools or selectors are misconfigured."""


class EvaluationError(PromptkitError):
    """An evaluation cannot run or its report cannot be built as asked (unknown variant, metric...)."""


class DatasetError(EvaluationError):
    """A dataset cannot be read, or a row is malformed (no inputs, a duplicate id...)."""


class MetricError(EvaluationError):
    """A metric raised, or returned something that is not a score in [0, 1]; names the metric and row.

    ``metric`` and ``row_id`` say which, when known; ``usage`` and ``cost`` (USD, ``None`` when a
    price is unknown) hold what a failed LLM judge's calls used, so a judge that gave no verdict
    still shows what it spent.
    """

    def __init__(
        self,
        message: str,
        *,
        metric: str | None = None,
        row_id: str | None = None,
        usage: Any = None,
        cost: float | None = 0.0,
    ) -> None:
        self.metric = metric
        self.row_id = row_id
        self.usage = usage
        self.cost = cost
        super().__init__(message)


class EvalGateError(EvaluationError, AssertionError):
    """An evaluation gate failed: a metric under its threshold, a rate, cost or latency over its
    limit, a regression against the baseline, or a missing baseline. The message is the gate's
    whole verdict; ``result`` holds it as a :class:`~promptkit.GateResult`. Also an
    ``AssertionError``, so a plain test fails rather than errors.
    """

    def __init__(self, message: str, *, result: Any = None) -> None:
        self.result = result
        super().__init__(message)


class SpendingCapError(PromptkitError):
    """A request was not sent because it could pass a batch's spending cap.

    ``limit`` is the cap, ``committed`` what was already used or reserved by calls in flight, and
    ``needed`` the request's worst case (its input tokens plus ``max_tokens``), all in ``unit``
    (``"tokens"``).
    """

    def __init__(
        self, message: str, *, limit: float = 0, committed: float = 0, needed: float = 0, unit: str = "tokens"
    ) -> None:
        self.limit = limit
        self.committed = committed
        self.needed = needed
        self.unit = unit
        super().__init__(message)


class ParseError(PromptkitError):
    """A model reply could not be parsed.

    ``text`` is the raw reply (never truncated), ``expected`` says what the parser wanted,
    ``attempts`` holds every raw reply when repair by re-asking was tried, ``completions`` the
    matching :class:`~promptkit.Completion` objects (with their usage, so a failed repair's cost
    stays visible), ``last_value`` the last value that parsed but failed validation, and
    ``position`` the 0-based offset in ``text`` of a syntax error, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        expected: str = "",
        attempts: list[str] | None = None,
        last_value: Any = None,
        position: int | None = None,
        completions: tuple[Any, ...] = (),
    ) -> None:
        self.text = text
        self.completions = completions
        self.position = position
        self.expected = expected
        self.attempts = attempts if attempts is not None else [text]
        self.last_value = last_value
        full = message if not expected else f"{message}; expected {expected}"
        super().__init__(full)

    def _repr_html_(self) -> str:
        """What failed, the raw reply escaped (the error's position marked) and every attempt."""
        import html

        facts = [("error", str(self))]
        if self.position is not None:
            facts.append(("position", f"character {self.position}"))
        if self.last_value is not None:
            facts.append(("last value", repr(self.last_value)))
        rows = "".join(
            f"<tr><th style='text-align:left;vertical-align:top'>{k}</th><td>{html.escape(v)}</td></tr>"
            for k, v in facts
        )
        reply = _reply_html(self.text, self.position)
        tries = ""
        if len(self.attempts) > 1:
            items = []
            for n, attempt in enumerate(self.attempts):
                usage = getattr(self.completions[n], "usage", None) if n < len(self.completions) else None
                tokens = f" · tokens in={usage.input_tokens} out={usage.output_tokens}" if usage is not None else ""
                items.append(f"<li><small>attempt {n + 1}{tokens}</small>{_reply_html(attempt, None)}</li>")
            tries = f"<details><summary>{len(self.attempts)} attempts</summary><ol>{''.join(items)}</ol></details>"
        return (
            f"<div><b style='color:#b91c1c'>{html.escape(type(self).__name__)}</b><table>{rows}</table>"
            f"<small style='color:#6b7280'>raw reply</small>{reply}{tries}</div>"
        )


_REPLY_PREVIEW = 2000
"""How many characters of a reply an error's notebook display shows (replies may be megabytes)."""


def _reply_html(text: str, position: int | None) -> str:
    """``text`` escaped in a ``<pre>``, cut around ``position`` when long, that character marked."""
    import html

    start = 0
    if len(text) > _REPLY_PREVIEW and position is not None:
        start = max(0, min(position - _REPLY_PREVIEW // 2, len(text) - _REPLY_PREVIEW))
    end = min(len(text), start + _REPLY_PREVIEW)
    if position is not None and start <= position < end:
        body = (
            html.escape(text[start:position])
            + f"<mark style='background:#fecaca'>{html.escape(text[position]) or ' '}</mark>"
            + html.escape(text[position + 1 : end])
        )
    else:
        body = html.escape(text[start:end])
    cut = f"<small>characters {start:,} to {end:,} of {len(text):,}</small>" if (start, end) != (0, len(text)) else ""
    return f"<pre style='white-space:pre-wrap;margin:2px 0 0 1em'>{body}</pre>{cut}"


class BackendError(PromptkitError):
    """A model call failed.

    ``provider`` names the backend, ``status_code`` is the HTTP status when there was one,
    ``retry_after`` the server's requested wait in seconds, when it gave one, and ``request_id``
    the provider's id for the reply (its ``x-request-id`` / ``request-id`` header), to quote to
    its support. ``attempts`` is how many tries were made (the retry layer fills it).
    ``retryable`` says whether the same request could succeed if sent again: a class default
    (true for rate limits, 5xx, connection errors, timeouts and cut streams; false for
    credentials, bad requests, malformed replies and this base class), overridable per error with
    the ``retryable=`` keyword.

    >>> err = RateLimitError("slow down", status_code=429, retry_after=2.0)
    >>> err.retryable, err.attempts, BackendError("x").retryable
    (True, 1, False)
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        attempts: int = 1,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.request_id = request_id
        self.attempts = attempts
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)


class AuthenticationError(BackendError):
    """Credentials are missing, invalid or lack permission (HTTP 401/403); not retryable."""


class BadRequestError(BackendError):
    """The provider rejected the request as invalid (HTTP 400/404/422); retrying will not help."""


class RateLimitError(BackendError):
    """The provider is rate limiting or overloaded (HTTP 429); ``retry_after`` may say how long."""

    retryable = True


class ServerError(BackendError):
    """The provider failed (HTTP 5xx); retryable."""

    retryable = True


class BackendConnectionError(BackendError):
    """The connection to the provider failed or was reset; retryable."""

    retryable = True


class BackendTimeoutError(BackendError, TimeoutError):
    """The call exceeded a timeout or its total deadline; retryable unless the total deadline passed."""

    retryable = True


class BatchExpiredError(BackendTimeoutError):
    """A provider batch's completion window (24 hours) ended before this item of it ran; nothing
    was billed for it, and submitting it again may succeed."""


class BatchCancelledError(BackendError):
    """The provider batch was cancelled before this item of it ran; nothing was billed for it."""

    retryable = True


class IncompleteStreamError(BackendError):
    """A stream ended before its final event. ``partial_text`` keeps what arrived.

    Retryable as a request (sending it again may complete), though a stream is never retried
    automatically once text has reached the caller.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.partial_text = partial_text
        super().__init__(
            message, provider=provider, status_code=status_code, request_id=request_id, retryable=retryable
        )


class ResponseError(BackendError):
    """The provider answered with something that is not a valid reply (malformed body)."""


class FallbackError(BackendError):
    """Every backend of a :class:`~promptkit.backends.FallbackBackend` failed.

    ``errors`` holds ``(backend name, error)`` for each backend tried, in order; the message names
    each one. ``retryable`` is true when any of them was (sending again later could succeed),
    ``retry_after`` is the shortest wait any of them asked for, and ``attempts`` their sum.

    >>> err = FallbackError("both failed", errors=(("a", ServerError("boom")), ("b", RateLimitError("slow"))))
    >>> err.retryable, [name for name, _ in err.errors]
    (True, ['a', 'b'])
    """

    def __init__(
        self, message: str, *, errors: tuple[tuple[str, BackendError], ...] = (), provider: str | None = None
    ) -> None:
        self.errors = errors
        waits = [e.retry_after for _, e in errors if e.retry_after is not None]
        super().__init__(
            message,
            provider=provider,
            retry_after=min(waits) if waits else None,
            retryable=any(e.retryable for _, e in errors),
            attempts=sum(e.attempts for _, e in errors) or 1,
        )


class GuardError(PromptkitError):
    """A test safeguard stopped a call. Deliberately not a :class:`BackendError`."""


class RealBackendBlockedError(GuardError):
    """A real provider backend was called while real requests are blocked (under pytest).

    ``provider`` names the backend that tried.
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        self.provider = provider
        super().__init__(message)


class ScriptExhaustedError(GuardError):
    """A ``MockBackend`` received a request after its script ran out. ``request`` is that request."""

    def __init__(self, message: str, *, request: Any = None) -> None:
        self.request = request
        self.provider = "mock"
        super().__init__(message)


class CassetteMissError(GuardError):
    """A test replaying a cassette sent a request that was not recorded.

    ``digest`` is the request's digest, ``cassette`` the cassette file, and ``nearest`` the digest
    of the most similar recorded request (``None`` when the cassette is empty); the message shows
    the request and a diff against that nearest one.
    """

    def __init__(
        self, message: str, *, digest: str = "", cassette: str | None = None, nearest: str | None = None
    ) -> None:
        self.digest = digest
        self.cassette = cassette
        self.nearest = nearest
        super().__init__(message)
