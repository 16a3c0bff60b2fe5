"""Datasets: rows of inputs, an optional expected output and metadata, each with an id.

:func:`load_dataset` reads a list of dicts, a JSONL or CSV file or a pandas DataFrame into an
immutable :class:`Dataset`. A row's id is the id column's value (as a string) or, without one, a
short hash of the row's content, so the same row keeps its id across runs and machines.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, overload

from .._errors import DatasetError
from ._types import NO_EXPECTED, Row

__all__ = ["Dataset", "canonical_json", "load_dataset"]

ID_LENGTH = 12
"""Hex digits of a derived row id: collisions stay negligible far beyond millions of rows."""


def _plain(value: Any) -> Any:
    """A JSON stand-in for values ``json`` cannot write (a pydantic model, a dataclass, a set)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


def canonical_json(value: Any) -> str:
    """``value`` as sorted, compact, ASCII JSON: the same text for the same content everywhere.

    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    '{"a":[1.5,"\\\\u00e9"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_plain)


def derived_id(inputs: Mapping[str, Any], expected: Any) -> str:
    """The id of a row without one: a short SHA-256 of its inputs and expected output."""
    doc: dict[str, Any] = {"inputs": dict(inputs)}
    if expected is not NO_EXPECTED:
        doc["expected"] = expected
    return hashlib.sha256(canonical_json(doc).encode("ascii")).hexdigest()[:ID_LENGTH]


class Dataset(Sequence[Row]):
    """An immutable sequence of :class:`Row` objects with unique ids, in order.

    ``dataset[i]`` is the i-th row (a slice is a smaller dataset), :meth:`by_id` finds a row by
    its id and :attr:`ids` lists them. Build one with :func:`load_dataset`.

    >>> data = load_dataset([{"q": "2+2?", "expected": "4", "id": "sum"}, {"q": "3+3?", "expected": "6"}])
    >>> len(data), data.ids[0], data.by_id("sum").expected, data[1].inputs["q"]
    (2, 'sum', '4', '3+3?')
    """

    __slots__ = ("_index", "_rows")

    def __init__(self, rows: Iterable[Row]) -> None:
        listed = tuple(rows)
        for position, row in enumerate(listed):
            if not isinstance(row, Row):
                raise DatasetError(f"row {position} is a {type(row).__name__}, not a Row; use load_dataset(...)")
        self._rows = listed
        self._index = _unique_index(listed)

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> Dataset: ...

    def __getitem__(self, index: int | slice) -> Row | Dataset:
        if isinstance(index, slice):
            return Dataset(self._rows[index])
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    @property
    def ids(self) -> tuple[str, ...]:
        """The rows' ids, in order."""
        return tuple(self._index)

    @property
    def input_names(self) -> frozenset[str]:
        """Every input name some row has."""
        return frozenset(name for row in self._rows for name in row.inputs)

    def by_id(self, row_id: str) -> Row:
        """The row whose id is ``row_id``; :class:`~promptkit.DatasetError` when there is none."""
        position = self._index.get(row_id)
        if position is None:
            raise DatasetError(f"no row with id {row_id!r} in this dataset of {len(self)} rows")
        return self._rows[position]

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.input_names)) or "none"
        with_expected = sum(row.has_expected for row in self._rows)
        return f"<Dataset {len(self)} rows; inputs: {names}; {with_expected} with an expected output>"

    def _repr_html_(self) -> str:
        import html

        names = sorted(self.input_names)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ("id", *names, "expected"))
        body = []
        for row in self._rows[:10]:
            cells = [row.id, *(row.inputs.get(n, "") for n in names), row.expected if row.has_expected else ""]
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c)[:80])}</td>" for c in cells) + "</tr>")
        more = f"<small>... {len(self) - 10} more rows</small>" if len(self) > 10 else ""
        return (
            f"<div><b>Dataset</b> <small>{len(self)} rows</small>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}</div>"
        )


def _unique_index(rows: Sequence[Row]) -> dict[str, int]:
    index: dict[str, int] = {}
    clashes: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        if not isinstance(row.id, str) or not row.id:
            raise DatasetError(f"row {position} has no id (an empty or non-string id: {row.id!r})")
        first = index.setdefault(row.id, position)
        if first != position:
            clashes.setdefault(row.id, [first]).append(position)
    if clashes:
        shown = []
        for row_id, positions in list(clashes.items())[:5]:
            where = ", ".join(str(p) for p in positions)
            derived = all(derived_id(rows[p].inputs, rows[p].expected) == row_id for p in positions)
            what = "are identical (the same inputs and expected output)" if derived else f"share the id {row_id!r}"
            shown.append(f"rows {where} {what}")
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise DatasetError(
            "duplicate row ids: " + "; ".join(shown) + more + "; remove the duplicates or give each row a unique id"
        )
    return index


# -- loading ----------------------------------------------------------------------------------------
def load_dataset(
    source: Dataset | Iterable[Mapping[str, Any] | Row] | str | os.PathLike[str] | Any,
    *,
    inputs: Sequence[str] | None = None,
    expected: str | None = "expected",
    id: str | None = "id",
    metadata: Sequence[str] | None = None,
) -> Dataset:
    """Read rows from a list of dicts (or of :class:`Row`), a ``.jsonl`` or ``.csv`` file (UTF-8;
    CSV values stay strings) or a pandas DataFrame; a :class:`Dataset` is returned as it is.

    ``expected`` names the column holding the expected output (rows without it have none),
    ``id`` the column of row ids (stringified; without one a row's id is a short hash of its
    inputs and expected output), ``metadata`` the columns kept as metadata. ``inputs`` names the
    input columns; by default every other column is an input. Duplicate ids, an empty dataset,
    a row that is not a mapping, a bad JSON line or a missing file raise
    :class:`~promptkit.DatasetError` saying where.

    >>> data = load_dataset([{"question": "2+2?", "answer": "4", "topic": "sums"}],
    ...                     expected="answer", metadata=["topic"])
    >>> row = data[0]
    >>> dict(row.inputs), row.expected, dict(row.metadata), len(row.id)
    ({'question': '2+2?'}, '4', {'topic': 'sums'}, 12)
    """
    if isinstance(source, Dataset):
        return source
    for option, value in (("inputs", inputs), ("metadata", metadata)):
        if value is not None and (isinstance(value, str) or not all(isinstance(v, str) for v in value)):
            raise DatasetError(f"{option} must be a list of column names, not {value!r}")
    records, origin = _records(source)
    columns = _Columns(inputs=inputs, expected=expected, id=id, metadata=metadata)
    rows = [item if isinstance(item, Row) else columns.row(item, where) for where, item in records]
    if not rows:
        raise DatasetError(f"{origin} holds no rows; a dataset needs at least one")
    columns.check_used(origin)
    return Dataset(rows)


class _Columns:
    """Which column plays which part, and which of the named ones some row had."""

    def __init__(
        self, *, inputs: Sequence[str] | None, expected: str | None, id: str | None, metadata: Sequence[str] | None
    ) -> None:
        self.inputs = tuple(inputs) if inputs is not None else None
        self.expected = expected
        self.id = id
        self.metadata = tuple(metadata or ())
        self.special = {name for name in (expected, id) if name is not None} | set(self.metadata)
        self.seen: set[str] = set()
        self.explicit_expected = expected != "expected"

    def row(self, record: Any, where: str) -> Row:
        if not isinstance(record, Mapping):
            raise DatasetError(f"{where} is a {type(record).__name__}, not a mapping of column names to values")
        bad = [key for key in record if not isinstance(key, str)]
        if bad:
            raise DatasetError(f"{where}: column names must be strings, not {bad[0]!r}")
        self.seen.update(record)
        if self.inputs is not None:
            values = {name: record[name] for name in self.inputs if name in record}
        else:
            values = {name: value for name, value in record.items() if name not in self.special}
        wanted = record.get(self.expected, NO_EXPECTED) if self.expected is not None else NO_EXPECTED
        extra = {name: record[name] for name in self.metadata if name in record}
        given = record.get(self.id) if self.id is not None else None
        if self.id is not None and self.id in record and (given is None or str(given) == ""):
            raise DatasetError(f"{where}: the {self.id!r} column is empty; give every row an id or none")
        row_id = str(given) if given is not None else derived_id(values, wanted)
        return Row(id=row_id, inputs=MappingProxyType(values), expected=wanted, metadata=MappingProxyType(extra))

    def check_used(self, origin: str) -> None:
        named = [*(self.inputs or ()), *self.metadata]
        if self.explicit_expected and self.expected is not None:
            named.append(self.expected)
        missing = [name for name in named if name not in self.seen]
        if missing:
            known = ", ".join(sorted(self.seen)) or "none"
            raise DatasetError(f"{origin}: no row has the column(s) {', '.join(missing)}; the columns are {known}")


def _records(source: Any) -> tuple[list[tuple[str, Any]], str]:
    """The raw records with where each came from, and a name for the source."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return _jsonl(path), path.name
        if suffix in (".csv", ".tsv"):
            return _csv(path, "\t" if suffix == ".tsv" else ","), path.name
        raise DatasetError(f"cannot tell the format of {path.name!r}; use a .jsonl or .csv file")
    pandas = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
    if pandas is not None and isinstance(source, pandas.DataFrame):
        labels = list(source.index)
        frame_rows = source.to_dict(orient="records")
        return [(f"row {label!r}", _no_nan(r)) for label, r in zip(labels, frame_rows, strict=True)], "the DataFrame"
    if isinstance(source, (bytes, Mapping)) or not isinstance(source, Iterable):
        raise DatasetError(
            f"a dataset is a list of rows (dicts), a .jsonl or .csv path or a DataFrame, not a {type(source).__name__}"
        )
    return [(f"item {i}", record) for i, record in enumerate(source)], "the list"


def _no_nan(record: Mapping[str, Any]) -> dict[str, Any]:
    """A DataFrame's missing cells (NaN) as ``None``."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}


def _jsonl(path: Path) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    out.append((f"{path.name}, line {number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path.name}, line {number}: not valid JSON ({exc.msg})") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: not UTF-8 text ({exc.reason})") from exc
    return out


def _csv(path: Path, delimiter: str) -> list[tuple[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as text:
            reader = csv.DictReader(text, delimiter=delimiter)
            out: list[tuple[str, Any]] = []
            for record in reader:
                where = f"{path.name}, line {reader.line_num}"
                if None in record:
                    raise DatasetError(f"{where}: more values than the header has columns")
                out.append((where, record))
            return out
    except OSError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc
