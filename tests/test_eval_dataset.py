"""Datasets: loading lists, JSONL, CSV and DataFrames; ids given or derived; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from promptkit import Dataset, DatasetError, Row, load_dataset
from promptkit._eval import NO_EXPECTED
from promptkit._eval._dataset import derived_id


def test_a_list_of_dicts_becomes_rows_of_inputs_expected_id_and_metadata() -> None:
    data = load_dataset(
        [
            {"id": 7, "q": "2+2?", "context": "sums", "expected": "4", "source": "book"},
            {"id": "b", "q": "3+3?", "context": "sums", "source": "web"},
        ],
        metadata=["source"],
    )
    first, second = data
    assert first.id == "7"  # stringified
    assert dict(first.inputs) == {"q": "2+2?", "context": "sums"}
    assert first.expected == "4"
    assert dict(first.metadata) == {"source": "book"}
    assert second.expected is NO_EXPECTED
    assert not second.has_expected
    assert data.ids == ("7", "b")
    assert data.by_id("b") is second
    assert data.input_names == {"q", "context"}


def test_named_columns_pick_the_inputs_and_the_expected_output() -> None:
    data = load_dataset(
        [{"question": "2+2?", "answer": "4", "key": "k1", "note": "left out"}],
        inputs=["question"],
        expected="answer",
        id="key",
    )
    row = data[0]
    assert dict(row.inputs) == {"question": "2+2?"}
    assert (row.expected, row.id) == ("4", "k1")


def test_derived_ids_are_short_stable_and_depend_on_the_content() -> None:
    rows = [{"q": "2+2?", "expected": "4"}, {"q": "2+2?", "expected": "5"}, {"q": "2+2?"}]
    first, again = load_dataset(rows), load_dataset(list(reversed(rows)))
    assert len(set(first.ids)) == 3
    assert all(len(i) == 12 for i in first.ids)
    assert set(first.ids) == set(again.ids)  # an id follows the row's content, not its position
    assert first[0].id == derived_id({"q": "2+2?"}, "4")
    assert load_dataset([{"b": 1, "a": 2}]).ids == load_dataset([{"a": 2, "b": 1}]).ids
    unlabelled = load_dataset([{"q": "x", "id": "given"}], id=None)[0]  # id=None: no id column
    assert unlabelled.id != "given"
    assert unlabelled.inputs["id"] == "given"


def test_duplicate_ids_are_refused_naming_them() -> None:
    with pytest.raises(DatasetError, match="rows 0, 2 share the id 'a'"):
        load_dataset([{"id": "a", "q": 1}, {"id": "b", "q": 2}, {"id": "a", "q": 3}])
    with pytest.raises(DatasetError, match=r"rows 0, 1 are identical \(the same inputs and expected output\)"):
        load_dataset([{"q": "2+2?", "expected": "4"}, {"q": "2+2?", "expected": "4"}])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([], "the list holds no rows"),
        ([{"q": 1}, ["not", "a", "row"]], "item 1 is a list, not a mapping"),
        ([{1: "x"}], "column names must be strings"),
        ([{"id": "", "q": 1}], "item 0: the 'id' column is empty"),
        ({"q": "a single row"}, "a dataset is a list of rows"),
        (42, "a dataset is a list of rows"),
    ],
)
def test_bad_sources_say_where_the_problem_is(source: object, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(source)


def test_named_columns_no_row_has_are_refused() -> None:
    with pytest.raises(DatasetError, match=r"no row has the column\(s\) topic; the columns are q"):
        load_dataset([{"q": "x"}], metadata=["topic"])
    with pytest.raises(DatasetError, match=r"no row has the column\(s\) answer"):
        load_dataset([{"q": "x"}], expected="answer")
    with pytest.raises(DatasetError, match="inputs must be a list of column names"):
        load_dataset([{"q": "x"}], inputs="q")


def test_jsonl_files_load_and_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"q": "2+2?", "expected": 4, "id": 1}\n\n{"q": "é", "expected": [1, 2]}\n', encoding="utf-8")
    data = load_dataset(path)
    assert data[0].expected == 4
    assert data[1].inputs["q"] == "é"
    assert data[1].expected == [1, 2]
    assert load_dataset(str(path)).ids == data.ids
    path.write_text('{"q": 1}\n{"q": \n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data.jsonl, line 2: not valid JSON"):
        load_dataset(path)
    path.write_text('{"q": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data.jsonl, line 2 is a list"):
        load_dataset(path)


def test_csv_files_load_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('id,q,expected,topic\n1,2+2?,4,sums\n2,"a, b",x,words\n', encoding="utf-8")
    data = load_dataset(path, metadata=["topic"])
    assert data.ids == ("1", "2")
    assert data[0].expected == "4"
    assert dict(data[1].inputs) == {"q": "a, b"}
    assert data[1].metadata["topic"] == "words"
    tsv = tmp_path / "data.tsv"
    tsv.write_text("q\texpected\n2+2?\t4\n", encoding="utf-8")
    assert load_dataset(tsv)[0].expected == "4"
    path.write_text("q,expected\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data.csv, line 2: more values than the header"):
        load_dataset(path)
    path.write_text("q,expected\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data\.csv holds no rows"):
        load_dataset(path)


def test_files_that_cannot_be_read_are_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot read '.*missing.jsonl'"):
        load_dataset(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match=r"cannot tell the format of 'data\.xlsx'"):
        load_dataset(tmp_path / "data.xlsx")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("q\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(latin)


def test_a_dataframe_loads_with_missing_cells_as_none() -> None:
    frame = pd.DataFrame({"q": ["2+2?", "3+3?"], "expected": [4.0, float("nan")], "id": ["a", "b"]})
    data = load_dataset(frame)
    assert data.ids == ("a", "b")
    assert data[0].expected == 4.0
    assert data[1].expected is None
    with pytest.raises(DatasetError, match="the DataFrame holds no rows"):
        load_dataset(frame.iloc[0:0])


def test_rows_and_datasets_pass_through() -> None:
    row = Row(id="r", inputs={"q": "x"})
    data = load_dataset([row, {"q": "y"}])
    assert data[0] is row
    assert load_dataset(data) is data


def test_a_dataset_is_an_immutable_sequence() -> None:
    data = load_dataset([{"q": str(i)} for i in range(12)])
    assert len(data) == 12
    part = data[2:5]
    assert isinstance(part, Dataset)
    assert [row.inputs["q"] for row in part] == ["2", "3", "4"]
    with pytest.raises(TypeError):
        data[0].inputs["q"] = "changed"  # type: ignore[index]
    with pytest.raises(DatasetError, match="no row with id 'nope'"):
        data.by_id("nope")
    assert repr(data) == "<Dataset 12 rows; inputs: q; 0 with an expected output>"
    html = data._repr_html_()
    assert "<table>" in html
    assert "2 more rows" in html
    with pytest.raises(DatasetError, match="not a Row"):
        Dataset([{"q": 1}])  # type: ignore[list-item]


def test_jsonl_rows_keep_their_json_types(tmp_path: Path) -> None:
    path = tmp_path / "typed.jsonl"
    path.write_text(json.dumps({"n": 3, "flags": {"a": True}, "expected": None}) + "\n", encoding="utf-8")
    row = load_dataset(path)[0]
    assert row.inputs["n"] == 3
    assert row.inputs["flags"] == {"a": True}
    assert row.expected is None
    assert row.has_expected  # None is a real expected value
