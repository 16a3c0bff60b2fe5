"""Saving and loading selectors: configuration, seed, and optionally the pool and its vectors.

A saved selector is one zip file holding ``selector.json`` (the configuration tree, candidates
included), ``pool.jsonl`` (when the pool is included) and ``vectors/<node>.npy`` (when the
embeddings are included), so a selection can be reproduced without embedding the pool again.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._embeddings import Embedder, embedder_from_config
from .._errors import ExampleError
from .._templates import ChatTemplate, Template
from ._budget import Score, TokenBudgetSelector
from ._examples import Example, ExamplePool
from ._index import NumpyIndex, VectorIndex
from ._selectors import (
    BaseSelector,
    BM25Selector,
    FixedSelector,
    MetadataSelector,
    MMRSelector,
    RandomSelector,
    SemanticSelector,
    Where,
)

__all__ = ["load_selector", "save_selector"]

FORMAT = "promptkit-selector"
VERSION = 1


def _nodes(selector: Any, path: str = "root") -> list[tuple[str, Any]]:
    out = [(path, selector)]
    candidates = getattr(selector, "candidates", None)
    if candidates is not None:
        out += _nodes(candidates, path + ".candidates")
    return out


def save_selector(
    selector: Any,
    path: str | os.PathLike[str],
    *,
    include_pool: bool = True,
    include_embeddings: bool = False,
) -> None:
    """Write ``selector`` to ``path`` (see :func:`load_selector`).

    ``include_embeddings`` stores the vectors of every semantic/MMR selector, so loading does
    not embed the pool again (the query is still embedded, by the embedder you load with).
    """
    import zipfile

    import numpy as np

    config = getattr(selector, "config", None)
    if config is None:
        raise ExampleError(f"{type(selector).__name__} cannot be saved: it has no config()")
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "selector": config(), "vectors": {}}
    pool = getattr(selector, "pool", None)
    files: dict[str, bytes] = {}
    if include_pool and isinstance(pool, ExamplePool) and len(pool):
        lines = (json.dumps(e.to_dict(), ensure_ascii=False) for e in pool)
        files["pool.jsonl"] = ("\n".join(lines) + "\n").encode()
        doc["pool"] = "pool.jsonl"
    if include_embeddings:
        for node, sel in _nodes(selector):
            if isinstance(sel, SemanticSelector):
                sel._sync()
                n = len(sel.index)
                matrix = sel.index.get(np.arange(n, dtype=np.intp)) if n else np.zeros((0, 0), np.float32)
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(matrix, dtype=np.float32))
                name = f"vectors/{node}.npy"
                files[name] = buf.getvalue()
                doc["vectors"][node] = name
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("selector.json", json.dumps(doc, indent=2, ensure_ascii=False, default=str))
            for name, data in files.items():
                zf.writestr(name, data)
    except OSError as exc:
        raise ExampleError(f"cannot write the selector to {Path(path).name!r}: {exc.strerror}") from exc


def load_selector(
    path: str | os.PathLike[str],
    *,
    pool: ExamplePool | None = None,
    embedder: Embedder | None = None,
    index: VectorIndex | None = None,
    count: Callable[[str], int] | None = None,
    where: Where | None = None,
    score: Score = None,
    reserve: Callable[[Mapping[str, Any]], int] | None = None,
) -> Any:
    """Rebuild a selector written by ``selector.save(path)``.

    What a file cannot hold is passed here: a ``pool`` when it was saved without one, an
    ``embedder`` that is not the hashing or local one, a custom ``count``, ``where``, ``score`` or
    ``reserve``.
    """
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(path) as zf:
            doc = json.loads(zf.read("selector.json"))
            if doc.get("format") != FORMAT:
                raise ExampleError(f"{Path(path).name!r} is not a saved promptkit selector")
            if pool is None and doc.get("pool"):
                text = zf.read(doc["pool"]).decode()
                pool = ExamplePool.from_records([json.loads(line) for line in text.splitlines() if line.strip()])
            vectors = {node: np.load(io.BytesIO(zf.read(name))) for node, name in doc.get("vectors", {}).items()}
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ExampleError(f"cannot read the selector file {Path(path).name!r}: {exc}") from exc
    options = {"embedder": embedder, "index": index, "count": count, "where": where, "score": score, "reserve": reserve}
    return _build(doc["selector"], "root", pool, vectors, options)


def _template(value: Any) -> Template | ChatTemplate | None:
    if value is None:
        return None
    if "chat" in value:
        return ChatTemplate([(role, source) for role, source in value["chat"]])
    return Template(value["text"], name="example_template")


def _build(
    cfg: Mapping[str, Any], node: str, pool: ExamplePool | None, vectors: Mapping[str, Any], options: Mapping[str, Any]
) -> Any:
    kind = cfg.get("type")
    if kind == "fixed":
        return FixedSelector(Example(e["fields"], e.get("metadata") or {}) for e in cfg["examples"])
    candidates = (
        _build(cfg["candidates"], node + ".candidates", pool, vectors, options) if "candidates" in cfg else None
    )
    if kind == "token_budget":
        if cfg.get("count") == "custom" and options["count"] is None:
            raise ExampleError("this selector was saved with a custom token counter; pass count=... to load it")
        if cfg.get("score") == "custom" and options["score"] is None:
            raise ExampleError("this selector was saved with a custom score function; pass score=... to load it")
        saved_reserve = cfg.get("reserve", 0)
        if saved_reserve == "custom" and options["reserve"] is None:
            raise ExampleError("this selector was saved with a reserve function; pass reserve=... to load it")
        return TokenBudgetSelector(
            None if candidates is not None else _need(pool),
            max_tokens=int(cfg["max_tokens"]),
            candidates=candidates,
            count=options["count"],
            model=cfg.get("model"),
            example_template=_template(cfg.get("example_template")),
            separator=cfg.get("separator", "\n\n"),
            score=options["score"] if cfg.get("score") == "custom" else cfg.get("score"),
            reserve=options["reserve"] if saved_reserve == "custom" else int(saved_reserve),
            exact_limit=int(cfg.get("exact_limit", 64)),
        )
    the_pool = _need(pool)
    selector: BaseSelector
    if kind == "random":
        selector = RandomSelector(the_pool, k=int(cfg["k"]), seed=int(cfg["seed"]), candidates=candidates)
    elif kind == "metadata":
        where = cfg.get("where")
        if where is None:
            if options["where"] is None:
                raise ExampleError("this selector was saved with a filter function; pass where=... to load it")
            where = options["where"]
        selector = MetadataSelector(the_pool, where=where, k=cfg.get("k"), candidates=candidates)
    elif kind in ("semantic", "mmr"):
        embedder = options["embedder"] or embedder_from_config(cfg["embedder"])
        index = options["index"]
        if node in vectors:
            index = NumpyIndex(vectors[node]) if index is None else index
            if len(index) == 0:
                index.add(vectors[node])
        common: dict[str, Any] = {
            "k": int(cfg["k"]),
            "fields": cfg.get("fields"),
            "input_keys": cfg.get("input_keys"),
            "embedder": embedder,
            "index": index,
            "min_score": cfg.get("min_score"),
            "candidates": candidates,
        }
        if kind == "mmr":
            selector = MMRSelector(the_pool, fetch_k=int(cfg["fetch_k"]), diversity=float(cfg["diversity"]), **common)
        else:
            selector = SemanticSelector(the_pool, **common)
    elif kind == "bm25":
        selector = BM25Selector(
            the_pool,
            k=int(cfg["k"]),
            fields=cfg.get("fields"),
            input_keys=cfg.get("input_keys"),
            stopwords=cfg.get("stopwords"),
            k1=float(cfg.get("k1", 1.5)),
            b=float(cfg.get("b", 0.75)),
            candidates=candidates,
        )
    else:
        raise ExampleError(f"unknown selector type {kind!r} in the file")
    return selector


def _need(pool: ExamplePool | None) -> ExamplePool:
    if pool is None:
        raise ExampleError("the file holds no pool; pass pool=... to load it")
    return pool
