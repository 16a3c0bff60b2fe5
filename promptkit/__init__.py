"""promptkit: typed, fast, testable primitives for prompting foundation models.

>>> import promptkit
>>> from promptkit.testing import MockBackend
>>> prompt = promptkit.Prompt("Capital of {{ country }}?", MockBackend(["Paris"]))
>>> prompt.complete(country="France")
'Paris'
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
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
    "ParseError",
    "Parser",
    "Prompt",
    "PromptkitError",
    "PydanticParser",
    "RateLimitError",
    "RealBackendBlockedError",
    "ResponseError",
    "Result",
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
