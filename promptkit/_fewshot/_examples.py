"""Examples, example pools, and how examples are rendered into a prompt."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, overload

from .._errors import ExampleError
from .._messages import Message
from .._templates import ChatTemplate, Template

__all__ = [
    "Example",
    "ExampleLike",
    "ExamplePool",
    "FewShot",
    "coerce_examples",
    "example_messages",
    "render_examples",
]


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
        if not isinstance(self.metadata, Mapping):
            raise ExampleError(f"example metadata must be a mapping, not {type(self.metadata).__name__}")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self.fields.items())))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Example, (dict(self.fields), dict(self.metadata)))

    def text(self, fields: Sequence[str] | None = None) -> str:
        """The values of ``fields`` (default: all) joined by newlines: what search looks at.

        >>> Example({"q": "2+2", "a": "4"}).text(["q"])
        '2+2'
        """
        if fields is None:
            return "\n".join(str(v) for v in self.fields.values())
        return "\n".join(str(self.fields[f]) for f in fields if f in self.fields)

    def to_dict(self) -> dict[str, Any]:
        """``{"fields": ..., "metadata": ...}``, the JSONL form :class:`ExamplePool` reads back."""
        out: dict[str, Any] = {"fields": dict(self.fields)}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


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


def _from_record(record: Mapping[str, Any], metadata_keys: Sequence[str], where: str) -> Example:
    if not isinstance(record, Mapping):
        raise ExampleError(f"{where}: expected an object, not {type(record).__name__}")
    if "fields" in record and isinstance(record["fields"], Mapping) and set(record) <= {"fields", "metadata"}:
        return Example(record["fields"], record.get("metadata") or {})
    fields = {k: v for k, v in record.items() if k not in metadata_keys}
    metadata = {k: record[k] for k in metadata_keys if k in record}
    try:
        return Example(fields, metadata)
    except ExampleError as exc:
        raise ExampleError(f"{where}: {exc}") from exc


class ExamplePool(Sequence[Example]):
    """An append-only collection of examples that selectors search.

    Selectors remember how much of the pool they have indexed, so :meth:`add` never makes them
    re-embed or re-count the examples they already know.

    >>> pool = ExamplePool([{"q": "2+2", "a": "4"}])
    >>> pool.add([{"q": "3+3", "a": "6"}])
    >>> len(pool), pool[1]["a"]
    (2, '6')
    """

    def __init__(self, examples: Iterable[ExampleLike] = ()) -> None:
        self._examples: list[Example] = list(coerce_examples(examples))
        self._positions: dict[int, int] | None = None

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *, metadata: Sequence[str] = ()) -> ExamplePool:
        """Examples from dicts; keys named in ``metadata`` go to each example's metadata."""
        return cls(_from_record(r, metadata, f"record {i}") for i, r in enumerate(records))

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], *, metadata: Sequence[str] = ()) -> ExamplePool:
        """One JSON object a line: either the fields themselves or ``{"fields": .., "metadata": ..}``."""
        from pathlib import Path

        path = Path(path)
        examples = []
        try:
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ExampleError(f"{path.name}, line {lineno}: invalid JSON: {exc.msg}") from exc
                    examples.append(_from_record(record, metadata, f"{path.name}, line {lineno}"))
        except OSError as exc:
            raise ExampleError(f"cannot read {path.name!r}: {exc.strerror}") from exc
        return cls(examples)

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike[str], *, metadata: Sequence[str] = (), delimiter: str = ","
    ) -> ExamplePool:
        """One example a row, the header naming the fields; ``metadata`` columns go to metadata."""
        import csv
        from pathlib import Path

        path = Path(path)
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter=delimiter))
        except (OSError, csv.Error) as exc:
            raise ExampleError(f"cannot read {path.name!r}: {exc}") from exc
        return cls(_from_record(r, metadata, f"{path.name}, row {i + 2}") for i, r in enumerate(rows))

    @classmethod
    def from_dataframe(cls, frame: Any, *, metadata: Sequence[str] = ()) -> ExamplePool:
        """One example a row of a pandas DataFrame (pandas itself is not imported here)."""
        to_dict = getattr(frame, "to_dict", None)
        if to_dict is None:
            raise ExampleError(f"expected a pandas DataFrame, not {type(frame).__name__}")
        return cls.from_records(to_dict(orient="records"), metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, metadata: Sequence[str] = ()) -> ExamplePool:
        """:meth:`from_jsonl` or :meth:`from_csv`, by the file's suffix."""
        from pathlib import Path

        suffix = Path(path).suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return cls.from_jsonl(path, metadata=metadata)
        if suffix in (".csv", ".tsv"):
            return cls.from_csv(path, metadata=metadata, delimiter="\t" if suffix == ".tsv" else ",")
        raise ExampleError(f"cannot tell the format of {Path(path).name!r}; use a .jsonl or .csv file")

    def save_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write the pool as JSONL that :meth:`from_jsonl` reads back exactly."""
        from pathlib import Path

        with Path(path).open("w", encoding="utf-8") as fh:
            for example in self._examples:
                fh.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")

    # -- growing and reading ---------------------------------------------------------------------
    def add(self, examples: Iterable[ExampleLike]) -> None:
        """Append examples; selectors index only these new ones on their next call."""
        new = coerce_examples(examples)
        self._examples.extend(new)
        if self._positions is not None:
            start = len(self._examples) - len(new)
            for i, e in enumerate(new):
                self._positions.setdefault(id(e), start + i)

    def position(self, example: Example) -> int:
        """Where ``example`` (this very object) sits in the pool."""
        if self._positions is None:
            self._positions = {}
            for i, e in enumerate(self._examples):
                self._positions.setdefault(id(e), i)
        pos = self._positions.get(id(example))
        if pos is None:
            raise ExampleError("a candidate example is not in this selector's pool; share one ExamplePool")
        return pos

    def take(self, positions: Iterable[int]) -> list[Example]:
        """The examples at ``positions``, in that order."""
        examples = self._examples
        return [examples[p] for p in positions]

    def texts(self, fields: Sequence[str] | None = None, start: int = 0) -> list[str]:
        """The search text of every example from ``start`` on (see :meth:`Example.text`)."""
        return [e.text(fields) for e in self._examples[start:]]

    def __len__(self) -> int:
        return len(self._examples)

    @overload
    def __getitem__(self, index: int) -> Example: ...
    @overload
    def __getitem__(self, index: slice) -> list[Example]: ...
    def __getitem__(self, index: int | slice) -> Example | list[Example]:
        return self._examples[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self._examples)

    def __repr__(self) -> str:
        return f"<ExamplePool {len(self)} examples>"

    def _repr_html_(self, *, rows: int = 10) -> str:
        """The first ``rows`` examples as a table, one column per field (metadata last), escaped."""
        import html

        shown = self._examples[:rows]
        names = list(dict.fromkeys(name for e in shown for name in e.fields))
        with_metadata = any(e.metadata for e in shown)
        columns = ["#", *names, "metadata"] if with_metadata else ["#", *names]
        head = "".join(f"<th>{html.escape(h)}</th>" for h in columns)
        body = []
        for position, example in enumerate(shown):
            cells = [str(position), *(_cell(example.fields[n]) if n in example.fields else "" for n in names)]
            if with_metadata:
                cells.append("; ".join(f"{k}={_cell(v)}" for k, v in example.metadata.items()))
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        more = f"<small>... {len(self) - rows} more examples</small>" if len(self) > rows else ""
        return (
            f"<div><b>ExamplePool</b> <small>{len(self)} examples</small>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}</div>"
        )


def _cell(value: Any, limit: int = 80) -> str:
    """A value as a table shows it: its text, cut to ``limit`` characters with an ellipsis."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def coerce_pool(pool: ExamplePool | Iterable[ExampleLike]) -> ExamplePool:
    """A pool as given, or a new one from a list of examples."""
    return pool if isinstance(pool, ExamplePool) else ExamplePool(pool)


def _default_example_text(example: Example) -> str:
    return "\n".join(f"{name.replace('_', ' ').capitalize()}: {value}" for name, value in example.fields.items())


def _used_fields(example: Example, template: Template | ChatTemplate) -> dict[str, Any]:
    # An example may carry more fields than its template shows (ids, sources): pass only the
    # used ones, so a template can show a subset. A missing field still raises, naming it.
    used = template.variables
    return {k: v for k, v in example.fields.items() if k in used}


def render_example(example: Example, template: Template | None = None) -> str:
    """One example as text: through ``template``, or as ``Field: value`` lines.

    >>> render_example(Example({"q": "2+2", "a": "4", "id": 7}), Template("{{ q }} = {{ a }}"))
    '2+2 = 4'
    """
    if template is None:
        return _default_example_text(example)
    return template.render(**_used_fields(example, template))


def render_examples(examples: Sequence[Example], template: Template | None = None, *, separator: str = "\n\n") -> str:
    """Render examples to one text block: each through ``template`` (or ``Field: value`` lines).

    >>> render_examples([Example({"input": "hi", "output": "hello"})])
    'Input: hi\\nOutput: hello'
    """
    return separator.join(render_example(e, template) for e in examples)


def example_messages(examples: Sequence[Example], template: ChatTemplate) -> list[Message]:
    """Each example as chat turns (typically a user message then the assistant's answer).

    >>> chat = ChatTemplate([("user", "{{ q }}"), ("assistant", "{{ a }}")])
    >>> [m.role for m in example_messages([Example({"q": "2+2", "a": "4"})], chat)]
    ['user', 'assistant']
    """
    out: list[Message] = []
    for e in examples:
        out.extend(template.render(**_used_fields(e, template)))
    return out


@dataclass(frozen=True, slots=True)
class FewShot:
    """Marks where a chat prompt shows its examples, as turns or as one text message.

    Put it in the list of messages given to ``Prompt``; with a :class:`ChatTemplate` as
    ``example_template`` each example becomes alternating user/assistant turns, with a
    :class:`Template` (or none) all examples form one ``role`` message.

    >>> FewShot(ChatTemplate([("user", "{{ q }}"), ("assistant", "{{ a }}")])).role
    'user'
    """

    example_template: Template | ChatTemplate | str | None = None
    examples: Any = None
    """A selector or a list of examples; the ``Prompt``'s own ``examples=`` wins when given."""
    role: str = "user"
    separator: str = "\n\n"

    def messages(self, examples: Sequence[Example]) -> list[Message]:
        """The messages that stand in for this marker."""
        template = self.example_template
        if isinstance(template, ChatTemplate):
            return example_messages(examples, template)
        if not examples:
            return []
        if isinstance(template, str):
            template = Template(template, name="example_template")
        return [Message(self.role, render_examples(examples, template, separator=self.separator))]  # type: ignore[arg-type]
