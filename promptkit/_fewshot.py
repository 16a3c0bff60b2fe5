"""Few-shot examples and the selectors that choose which ones a prompt shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from ._errors import ExampleError
from ._templates import Template

__all__ = ["Example", "ExampleLike", "FixedSelector", "Selector", "coerce_examples", "render_examples"]


@dataclass(frozen=True, slots=True)
class Example:
    """One example: named fields (e.g. ``input``/``output``) plus optional metadata.

    >>> Example({"input": "2+2", "output": "4"})["output"]
    '4'
    """

    fields: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.fields, Mapping) or not self.fields:
            raise ExampleError(f"an example needs a non-empty mapping of fields, not {self.fields!r:.80}")
        bad = [k for k in self.fields if not isinstance(k, str)]
        if bad:
            raise ExampleError(f"example field names must be strings, got {bad!r:.80}")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self.fields.items())))


ExampleLike = Example | Mapping[str, Any]


def coerce_examples(examples: Iterable[ExampleLike]) -> tuple[Example, ...]:
    """Turn mappings into :class:`Example` objects (examples pass through)."""
    if isinstance(examples, (str, bytes, Mapping)):
        raise ExampleError("examples must be a sequence of mappings or Example objects, not a single value")
    out = []
    for i, item in enumerate(examples):
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Example(item))
        else:
            raise ExampleError(f"example {i} must be a mapping or an Example, not {type(item).__name__}")
    return tuple(out)


@runtime_checkable
class Selector(Protocol):
    """Chooses the examples to show for one set of inputs."""

    def select(self, inputs: Mapping[str, Any]) -> Sequence[Example]: ...


class FixedSelector:
    """Always the same examples, in the given order.

    >>> FixedSelector([{"q": "1+1", "a": "2"}]).select({})[0]["a"]
    '2'
    """

    def __init__(self, examples: Iterable[ExampleLike]) -> None:
        self.examples = coerce_examples(examples)

    def select(self, inputs: Mapping[str, Any]) -> Sequence[Example]:
        return self.examples

    def __repr__(self) -> str:
        return f"FixedSelector({len(self.examples)} examples)"


def _default_example_text(example: Example) -> str:
    return "\n".join(f"{name.replace('_', ' ').capitalize()}: {value}" for name, value in example.fields.items())


def render_examples(examples: Sequence[Example], template: Template | None = None, *, separator: str = "\n\n") -> str:
    """Render examples to one text block: each through ``template`` (or ``Field: value`` lines).

    >>> render_examples([Example({"input": "hi", "output": "hello"})])
    'Input: hi\\nOutput: hello'
    """
    if template is None:
        return separator.join(_default_example_text(e) for e in examples)
    return separator.join(template.render(**e.fields) for e in examples)
