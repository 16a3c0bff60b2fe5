"""promptkit: typed, fast, testable primitives for prompting foundation models.

>>> import promptkit
>>> from promptkit.testing import MockBackend
>>> prompt = promptkit.Prompt("Capital of {{ country }}?", MockBackend(["Paris"]))
>>> prompt.complete(country="France")
'Paris'
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

# Cheap, always needed: errors, message types and the backend contract.
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
from ._messages import (
    Chunk,
    Completion,
    ImagePart,
    Message,
    TextPart,
    Usage,
)
from ._utils import UNSET
from .backends import (
    AsyncStream,
    Backend,
    BaseBackend,
    Stream,
    backend,
)

if _TYPE_CHECKING:
    from ._embeddings import (
        BaseEmbedder,
        Embedder,
        EmbeddingCache,
        HashingEmbedder,
        OpenAIEmbedder,
        SentenceTransformerEmbedder,
    )
    from ._fewshot import (
        BaseSelector,
        BM25Selector,
        Example,
        ExamplePool,
        FewShot,
        FixedSelector,
        MetadataSelector,
        MMRSelector,
        NumpyIndex,
        QdrantIndex,
        RandomSelector,
        Selected,
        Selection,
        Selector,
        SemanticSelector,
        TokenBudgetSelector,
        VectorIndex,
        load_selector,
        save_selector,
    )
    from ._files import (
        PromptFile,
        load_prompt,
        load_prompt_file,
        parse_prompt_file,
    )
    from ._parsers import (
        BaseParser,
        BoolParser,
        ChoiceParser,
        DateParser,
        JsonParser,
        ListParser,
        NativeOutputParser,
        NumberParser,
        Parser,
        PydanticParser,
        RegexParser,
        StreamingParser,
        StreamState,
        TextParser,
        XmlTagParser,
        strict_json_schema,
    )
    from ._prompt import Prompt, Result
    from ._templates import (
        ChatTemplate,
        MessagesPlaceholder,
        Preview,
        PromptLibrary,
        Template,
        TemplateLimits,
    )
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
    from .backends._retry import RetryPolicy
    from .backends.anthropic import AnthropicBackend
    from .backends.openai import OpenAIBackend

__version__ = "0.1.0"

# Everything else loads on first access, so ``import promptkit`` (and the pytest plugin, which
# every test session of a project using promptkit imports) pays only for what it uses.
_LAZY: dict[str, str] = {
    "AnthropicBackend": ".backends.anthropic",
    "BM25Selector": "._fewshot",
    "BaseEmbedder": "._embeddings",
    "BaseParser": "._parsers",
    "BaseSelector": "._fewshot",
    "BoolParser": "._parsers",
    "ChatTemplate": "._templates",
    "ChoiceParser": "._parsers",
    "DateParser": "._parsers",
    "Embedder": "._embeddings",
    "EmbeddingCache": "._embeddings",
    "Example": "._fewshot",
    "ExamplePool": "._fewshot",
    "FewShot": "._fewshot",
    "FitResult": "._tokens",
    "FixedSelector": "._fewshot",
    "HashingEmbedder": "._embeddings",
    "JsonParser": "._parsers",
    "ListParser": "._parsers",
    "MMRSelector": "._fewshot",
    "MessagesPlaceholder": "._templates",
    "MetadataSelector": "._fewshot",
    "NativeOutputParser": "._parsers",
    "NumberParser": "._parsers",
    "NumpyIndex": "._fewshot",
    "OpenAIBackend": ".backends.openai",
    "OpenAIEmbedder": "._embeddings",
    "Parser": "._parsers",
    "Preview": "._templates",
    "Prompt": "._prompt",
    "PromptFile": "._files",
    "PromptLibrary": "._templates",
    "PydanticParser": "._parsers",
    "QdrantIndex": "._fewshot",
    "RandomSelector": "._fewshot",
    "RegexParser": "._parsers",
    "Result": "._prompt",
    "RetryPolicy": ".backends._retry",
    "Selected": "._fewshot",
    "Selection": "._fewshot",
    "Selector": "._fewshot",
    "SemanticSelector": "._fewshot",
    "SentenceTransformerEmbedder": "._embeddings",
    "StreamState": "._parsers",
    "StreamingParser": "._parsers",
    "Template": "._templates",
    "TemplateLimits": "._templates",
    "TextParser": "._parsers",
    "TokenBudgetSelector": "._fewshot",
    "TokenCount": "._tokens",
    "Tokenizer": "._tokens",
    "VectorIndex": "._fewshot",
    "XmlTagParser": "._parsers",
    "count_tokens": "._tokens",
    "encoding_for_model": "._tokens",
    "fit_to_budget": "._tokens",
    "get_tokenizer": "._tokens",
    "is_exact": "._tokens",
    "load_prompt": "._files",
    "load_prompt_file": "._files",
    "load_selector": "._fewshot",
    "parse_prompt_file": "._files",
    "provision_tiktoken_cache": "._tiktoken_files",
    "save_selector": "._fewshot",
    "strict_json_schema": "._parsers",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptkit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AnthropicBackend",
    "AsyncStream",
    "AuthenticationError",
    "BM25Selector",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "BaseBackend",
    "BaseEmbedder",
    "BaseParser",
    "BaseSelector",
    "BoolParser",
    "ChatTemplate",
    "ChoiceParser",
    "Chunk",
    "Completion",
    "ConfigurationError",
    "DateParser",
    "Embedder",
    "EmbeddingCache",
    "Example",
    "ExampleError",
    "ExamplePool",
    "FewShot",
    "FitResult",
    "FixedSelector",
    "HashingEmbedder",
    "ImagePart",
    "IncompleteStreamError",
    "JsonParser",
    "ListParser",
    "MMRSelector",
    "Message",
    "MessagesPlaceholder",
    "MetadataSelector",
    "MissingDependencyError",
    "NativeOutputParser",
    "NumberParser",
    "NumpyIndex",
    "OpenAIBackend",
    "OpenAIEmbedder",
    "ParseError",
    "Parser",
    "Preview",
    "Prompt",
    "PromptFile",
    "PromptLibrary",
    "PromptkitError",
    "PydanticParser",
    "QdrantIndex",
    "RandomSelector",
    "RateLimitError",
    "RealBackendBlockedError",
    "RegexParser",
    "ResponseError",
    "Result",
    "RetryPolicy",
    "ScriptExhaustedError",
    "Selected",
    "Selection",
    "Selector",
    "SemanticSelector",
    "SentenceTransformerEmbedder",
    "ServerError",
    "Stream",
    "StreamState",
    "StreamingParser",
    "Template",
    "TemplateError",
    "TemplateInputError",
    "TemplateLimitError",
    "TemplateLimits",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TextParser",
    "TextPart",
    "TokenBudgetError",
    "TokenBudgetSelector",
    "TokenCount",
    "Tokenizer",
    "TokenizerError",
    "UNSET",
    "UndefinedVariableError",
    "UnexpectedVariableError",
    "UnsupportedCapabilityError",
    "UnsupportedParameterError",
    "Usage",
    "VectorIndex",
    "XmlTagParser",
    "__version__",
    "backend",
    "count_tokens",
    "encoding_for_model",
    "fit_to_budget",
    "get_tokenizer",
    "is_exact",
    "load_prompt",
    "load_prompt_file",
    "load_selector",
    "parse_prompt_file",
    "provision_tiktoken_cache",
    "save_selector",
    "strict_json_schema",
]
