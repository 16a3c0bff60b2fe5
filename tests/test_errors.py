from __future__ import annotations

import pickle

import pytest

import promptkit
from promptkit import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    IncompleteStreamError,
    MissingDependencyError,
    ParseError,
    PromptkitError,
    RateLimitError,
    RealBackendBlockedError,
    ResponseError,
    ScriptExhaustedError,
    ServerError,
    TemplateError,
    UndefinedVariableError,
    UnsupportedParameterError,
)
from promptkit.testing import GuardError

ERROR_NAMES = [n for n in promptkit.__all__ if n.endswith("Error")]


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_public_error_is_a_promptkit_error(name: str) -> None:
    assert issubclass(getattr(promptkit, name), PromptkitError)


def test_builtin_bases_for_natural_except_clauses() -> None:
    assert issubclass(BackendTimeoutError, TimeoutError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)


def test_template_error_names_template_and_line() -> None:
    err = UndefinedVariableError("missing template variable 'x'", variable="x", template="greet", lineno=3)
    assert str(err) == "missing template variable 'x' (in greet, line 3)"
    assert (err.variable, err.template, err.lineno) == ("x", "greet", 3)
    assert isinstance(err, TemplateError)


def test_parse_error_keeps_raw_text_and_expectation() -> None:
    err = ParseError("not a number", text="  twelve ", expected="an integer")
    assert err.text == "  twelve "
    assert err.attempts == ["  twelve "]
    assert "expected an integer" in str(err)


def test_errors_redact_api_keys() -> None:
    err = BackendError("Incorrect API key provided: sk-proj-abcdefghijklmnop1234", provider="openai")
    assert "abcdefghijklmnop" not in str(err)
    assert "sk-***" in str(err)


def test_pickled_error_keeps_attributes_but_drops_cause_with_secrets() -> None:
    class SDKError(Exception):
        def __init__(self) -> None:
            super().__init__("boom")
            self.headers = {"authorization": "Bearer sk-secret-key-123456789"}

    try:
        try:
            raise SDKError
        except SDKError as exc:
            raise RateLimitError("slow down", provider="openai", status_code=429, retry_after=3.0) from exc
    except RateLimitError as err:
        data = pickle.dumps(err)
    assert b"sk-secret" not in data
    clone = pickle.loads(data)
    assert isinstance(clone, RateLimitError)
    assert (clone.status_code, clone.retry_after, clone.provider, str(clone)) == (
        429,
        3.0,
        "openai",
        "slow down",
    )
    assert clone.__cause__ is None


def test_incomplete_stream_error_keeps_partial_text() -> None:
    err = IncompleteStreamError("cut", partial_text="Hello wor", provider="mock")
    assert err.partial_text == "Hello wor"
    assert pickle.loads(pickle.dumps(err)).partial_text == "Hello wor"


def test_unsupported_parameter_error_names_param_and_backend() -> None:
    err = UnsupportedParameterError("logit_bias", "MyBackend")
    assert err.param == "logit_bias"
    assert err.backend == "MyBackend"
    assert "MyBackend does not support the parameter 'logit_bias'" in str(err)


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (BackendError, False),
        (AuthenticationError, False),
        (BadRequestError, False),
        (ResponseError, False),
        (RateLimitError, True),
        (ServerError, True),
        (BackendConnectionError, True),
        (BackendTimeoutError, True),
        (IncompleteStreamError, True),
    ],
)
def test_every_backend_error_says_whether_it_is_retryable(cls: type[BackendError], retryable: bool) -> None:
    err = cls("x")
    assert err.retryable is retryable
    assert (err.attempts, err.status_code, err.request_id) == (1, None, None)
    assert cls("x", retryable=not retryable).retryable is (not retryable)
    assert cls.retryable is retryable  # the per-instance choice leaves the class alone


def test_backend_error_attributes_survive_pickling() -> None:
    err = ServerError("boom", provider="p", status_code=503, request_id="req_1", retryable=False, attempts=3)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.status_code, clone.request_id, clone.retryable, clone.attempts) == (503, "req_1", False, 3)


def test_guard_errors_are_not_backend_errors() -> None:
    # A fallback or a batch catches BackendError; it must never swallow a test's safeguard.
    for cls in (RealBackendBlockedError, ScriptExhaustedError):
        assert issubclass(cls, GuardError)
        assert issubclass(cls, PromptkitError)
        assert not issubclass(cls, BackendError)
    assert RealBackendBlockedError("x", provider="openai:gpt-4o").provider == "openai:gpt-4o"
    assert ScriptExhaustedError("x", request="r").request == "r"


def test_parse_error_html_shows_what_failed_and_the_raw_reply_escaped() -> None:
    from promptkit import JsonParser

    with pytest.raises(ParseError) as caught:
        JsonParser().parse('{"answer": <script>alert(1)</script>')
    shown = caught.value._repr_html_()
    assert "<b style='color:#b91c1c'>ParseError</b>" in shown
    assert "reply is not valid JSON" in shown
    assert "<script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" not in shown  # the failing character is marked apart
    assert "<mark style='background:#fecaca'>&lt;</mark>script&gt;alert(1)&lt;/script&gt;" in shown
    assert "position</th><td>character 11</td>" in shown
    assert "attempts" not in shown


def test_parse_error_html_lists_every_repair_attempt_with_its_tokens() -> None:
    from promptkit import Completion, Usage

    error = ParseError(
        "still not a number",
        text="<b>seven</b>",
        expected="a number",
        attempts=["seven?", "<b>seven</b>"],
        completions=(
            Completion(text="seven?", usage=Usage(input_tokens=12, output_tokens=3)),
            Completion(text="<b>seven</b>", usage=Usage(input_tokens=30, output_tokens=4)),
        ),
        last_value="<i>7</i>",
    )
    shown = error._repr_html_()
    assert "still not a number; expected a number" in shown
    assert "<summary>2 attempts</summary>" in shown
    assert "attempt 1 · tokens in=12 out=3" in shown
    assert "attempt 2 · tokens in=30 out=4" in shown
    assert "last value</th><td>&#x27;&lt;i&gt;7&lt;/i&gt;&#x27;</td>" in shown
    assert "<b>seven</b>" not in shown
    assert shown.count("&lt;b&gt;seven&lt;/b&gt;") == 2


def test_parse_error_html_cuts_a_long_reply_around_the_error() -> None:
    text = "a" * 10_000 + "!" + "b" * 10_000
    shown = ParseError("bad", text=text, position=10_000)._repr_html_()
    assert "<mark style='background:#fecaca'>!</mark>" in shown
    assert "characters 9,000 to 11,000 of 20,001" in shown
    assert len(shown) < 3_000
