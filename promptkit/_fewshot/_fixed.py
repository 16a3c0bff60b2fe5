"""The ``Selector`` protocol and ``FixedSelector``: what a prompt needs without the search machinery.

Kept apart from ``_selectors`` so a prompt with fixed examples (or none) does not load the
embedders, indexes and scorers that the other selectors use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from ._examples import Example, ExampleLike, coerce_examples
from ._selection import Selection

__all__ = ["FixedSelector", "Selector"]


@runtime_checkable
class Selector(Protocol):
    """Chooses the examples to show for one set of inputs."""

    def select(self, inputs: Mapping[str, Any]) -> Sequence[Example]: ...


class FixedSelector:
    """Always the same examples, in the given order.

    >>> FixedSelector([{"q": "1+1", "a": "2"}]).select({})[0]["a"]
    '2'
    """

    kind: ClassVar[str] = "fixed"

    def __init__(self, examples: Iterable[ExampleLike]) -> None:
        self.examples = coerce_examples(examples)
        self._selection = Selection(self.examples, reasons=["fixed"] * len(self.examples), selector="FixedSelector")

    def select(self, inputs: Mapping[str, Any]) -> Selection:
        return self._selection

    async def aselect(self, inputs: Mapping[str, Any]) -> Selection:
        return self._selection

    def config(self) -> dict[str, Any]:
        return {"type": self.kind, "examples": [e.to_dict() for e in self.examples]}

    def save(self, path: str | os.PathLike[str], **options: Any) -> None:
        """Write the selector to a file that :func:`load_selector` reads back."""
        from ._persist import save_selector

        save_selector(self, path, **options)

    def __repr__(self) -> str:
        return f"FixedSelector({len(self.examples)} examples)"
