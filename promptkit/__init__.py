"""promptkit: typed, fast, testable primitives for prompting foundation models.

>>> import promptkit
>>> from promptkit.testing import MockBackend
>>> prompt = promptkit.Prompt("Capital of {{ country }}?", MockBackend(["Paris"]))
>>> prompt.complete(country="France")
'Paris'
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    ExampleError,
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
    TemplateInputError,
    TemplateLimitError,
    TemplateSecurityError,
    TemplateSyntaxError,
    TokenBudgetError,
    TokenizerError,
    UndefinedVariableError,
    UnexpectedVariableError,
    UnsupportedCapabilityError,
    UnsupportedParameterError,
)
from ._fewshot import Example, FixedSelector, Selector
from ._messages import Chunk, Completion, ImagePart, Message, TextPart, Usage
from ._parsers import Parser, PydanticParser, TextParser
from ._prompt import Prompt, Result
from ._templates import ChatTemplate, Template
from ._tiktoken_files import provision_tiktoken_cache
from ._tokens import (
    FitResult,
    TokenCount,
    Tokenizer,
    count_tokens,
    encoding_for_model,
    fit_to_budget,
    get_tokenizer,
    is_exact,
)
from ._utils import UNSET
from .backends import AsyncStream, Backend, BaseBackend, Stream, backend

if _TYPE_CHECKING:
    from .backends._retry import RetryPolicy
    from .backends.anthropic import AnthropicBackend
    from .backends.openai import OpenAIBackend

__version__ = "0.1.0"

# Names whose modules cost more to import (or pull an optional SDK when used): loaded on first access.
_LAZY = {
    "AnthropicBackend": "promptkit.backends.anthropic",
    "OpenAIBackend": "promptkit.backends.openai",
    "RetryPolicy": "promptkit.backends._retry",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AnthropicBackend",
    "AsyncStream",
    "AuthenticationError",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "BaseBackend",
    "ChatTemplate",
    "Chunk",
    "Completion",
    "ConfigurationError",
    "Example",
    "ExampleError",
    "FitResult",
    "FixedSelector",
    "ImagePart",
    "IncompleteStreamError",
    "Message",
    "MissingDependencyError",
    "OpenAIBackend",
    "ParseError",
    "Parser",
    "Prompt",
    "PromptkitError",
    "PydanticParser",
    "RateLimitError",
    "RealBackendBlockedError",
    "ResponseError",
    "Result",
    "RetryPolicy",
    "ScriptExhaustedError",
    "Selector",
    "ServerError",
    "Stream",
    "Template",
    "TemplateError",
    "TemplateInputError",
    "TemplateLimitError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TextParser",
    "TextPart",
    "TokenBudgetError",
    "TokenCount",
    "Tokenizer",
    "TokenizerError",
    "UNSET",
    "UndefinedVariableError",
    "UnexpectedVariableError",
    "UnsupportedCapabilityError",
    "UnsupportedParameterError",
    "Usage",
    "__version__",
    "backend",
    "count_tokens",
    "encoding_for_model",
    "fit_to_budget",
    "get_tokenizer",
    "is_exact",
    "provision_tiktoken_cache",
]
