"""Building a checked ``promptkit eval`` config: the prompts, the dataset, the metrics and the
options of :func:`promptkit.evaluate`, as a :class:`Plan`.

Paths are relative to the config's folder. Whatever the config names but cannot be built (a
missing file, a selector without examples, a metric option its class refuses) raises
:class:`~._config.ConfigFileError` naming the key; errors inside a prompt file (its template
syntax, with the line) propagate as they do for the other commands.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._errors import ConfigurationError, DatasetError, EvaluationError, ExampleError
from ._config import (
    METRICS,
    STRATEGIES,
    ConfigFileError,
    ConfigSpec,
    DatasetSpec,
    JudgeOptions,
    Loc,
    SchemaOptions,
    VariantSpec,
    named_options,
    read_config,
    unknown,
    validated,
)

if TYPE_CHECKING:
    from .._eval import Dataset, Metric
    from .._fewshot import ExamplePool, Selector
    from .._files import PromptFile
    from .._prompt import Prompt
    from .._strategies import Strategy
    from ..backends import Backend, Params

__all__ = ["Backends", "Plan", "load_config"]


# -- building -------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Plan:
    """A checked config, built: the arguments of :func:`promptkit.evaluate` and what to print after it."""

    source: Path
    variants: dict[str, Prompt[Any]]
    dataset: Dataset
    metrics: list[Metric]
    options: dict[str, Any]
    compare: tuple[str, str] | None = None
    judges: int = 0
    specs: dict[str, str] = field(default_factory=dict)  # variant -> its backend spec


class Backends:
    """The backends of one run, one per spec, shared by the variants (and judges) that name it."""

    def __init__(self, make: Callable[[str], Backend]) -> None:
        self._make = make
        self._made: dict[str, Backend] = {}

    def get(self, spec: str) -> Backend:
        if spec not in self._made:
            self._made[spec] = self._make(spec)
        return self._made[spec]


def _file(source: Path, path: str, where: Loc, what: str) -> Path:
    resolved = source.parent / path
    if not resolved.is_file():
        raise ConfigFileError(source, where, f"no such {what} {path!r} (paths are relative to the config's folder)")
    return resolved


def _strategy(spec: Any, source: Path, where: Loc) -> Strategy | None:
    from .._strategies import ChainOfThought, SelfConsistency, SelfRefine

    if spec is None:
        return None
    name, options = named_options(spec, STRATEGIES, "strategy", source, where)
    given = options.model_dump(exclude_unset=True, exclude_none=True)
    if name == "chain_of_thought":
        return ChainOfThought(**given)
    if name == "self_consistency":
        base = ChainOfThought() if given.pop("base", "direct") == "chain_of_thought" else None
        return SelfConsistency(**given, base=base)
    if name == "self_refine":
        return SelfRefine(**given)
    return None  # direct


_SELECTOR_OPTIONS = {
    "seed": ("random",),
    "diversity": ("mmr",),
    "fetch_k": ("mmr",),
    "embedder": ("semantic", "mmr"),
    "fields": ("semantic", "mmr", "bm25"),
}


def _pool(variant: VariantSpec, file: PromptFile, source: Path, where: Loc) -> ExamplePool | None:
    from .._fewshot import ExamplePool

    if variant.examples is None:
        return ExamplePool(file.examples) if file.examples else None
    path = _file(source, variant.examples, (*where, "examples"), "examples file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return ExamplePool.from_jsonl(path)
        if suffix == ".csv":
            return ExamplePool.from_csv(path)
    except ExampleError as exc:
        raise ConfigFileError(source, (*where, "examples"), str(exc)) from exc
    raise ConfigFileError(source, (*where, "examples"), f"{variant.examples!r}: examples are a .jsonl or .csv file")


def _selector(variant: VariantSpec, file: PromptFile, source: Path, where: Loc) -> Selector | None:
    from .._embeddings import HashingEmbedder
    from .._fewshot import BM25Selector, FixedSelector, MMRSelector, RandomSelector, SemanticSelector

    kind = variant.selector or "fixed"
    for option, kinds in _SELECTOR_OPTIONS.items():
        if getattr(variant, option) is not None and kind not in kinds:
            raise ConfigFileError(
                source, (*where, option), f"applies to the {' and '.join(kinds)} selectors, not {kind}"
            )
    pool = _pool(variant, file, source, where)
    if pool is None:
        if variant.selector is None and variant.k is None:
            return None
        raise ConfigFileError(
            source, where, "a selector needs examples: an 'examples' file, or examples in the prompt file"
        )
    given: dict[str, Any] = {"k": variant.k} if variant.k is not None else {}
    if variant.fields is not None:
        given["fields"] = variant.fields
    try:
        if kind == "fixed":
            return FixedSelector(list(pool)[: variant.k] if variant.k is not None else pool)
        if kind == "random":
            return RandomSelector(pool, **given, seed=variant.seed or 0)
        if kind == "bm25":
            return BM25Selector(pool, **given)
        embedder = HashingEmbedder() if variant.embedder == "hashing" else None
        if kind == "semantic":
            return SemanticSelector(pool, **given, embedder=embedder)
        mmr: dict[str, Any] = {
            k: v for k, v in (("diversity", variant.diversity), ("fetch_k", variant.fetch_k)) if v is not None
        }
        return MMRSelector(pool, **given, **mmr, embedder=embedder)
    except (ExampleError, ConfigurationError) as exc:
        raise ConfigFileError(source, (*where, "selector"), str(exc)) from exc


def _spec(source: Path, where: Loc, file: PromptFile, override: str | None, variant: VariantSpec) -> str:
    if override is not None:
        return override
    if variant.model is not None:
        return variant.model
    if file.model is None:
        raise ConfigFileError(
            source,
            where,
            f"{file.path.name if file.path else file.name} names no model; set 'model:' in the variant or pass --model",
        )
    if file.model != "mock" and ":" not in file.model:
        raise ConfigFileError(
            source,
            where,
            f"the model {file.model!r} of {file.path.name if file.path else file.name} is not a "
            "backend spec (provider:model); set 'model:' in the variant or pass --model",
        )
    return file.model


def _backend(backends: Backends, spec: str, source: Path, where: Loc) -> Backend:
    try:
        return backends.get(spec)
    except ConfigurationError as exc:
        raise ConfigFileError(source, where, str(exc)) from exc


def _load_file(path: Path) -> PromptFile:
    from .._files import load_prompt_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        file = load_prompt_file(path)
    for warning in caught:
        click.echo(f"promptkit: warning: {warning.message}", err=True)
    return file


def _variant(
    name: str,
    variant: VariantSpec,
    config: ConfigSpec,
    source: Path,
    *,
    backends: Backends,
    model: str | None,
) -> tuple[Prompt[Any], str]:
    from .._prompt import Prompt

    where: Loc = ("variants", name)
    file = _load_file(_file(source, variant.prompt, (*where, "prompt"), "prompt file"))
    spec = _spec(source, where, file, model, variant)
    backend = _backend(backends, spec, source, (*where, "model") if model is None and variant.model else where)
    strategy = _strategy(variant.strategy, source, (*where, "strategy"))
    selector = _selector(variant, file, source, where)
    params: Params = {**file.params, **(config.params or {}), **(variant.params or {})}  # type: ignore[typeddict-item]  # the backend checks names and values
    try:
        prompt: Prompt[Any] = Prompt(
            file.template,
            backend,
            parser=file.parser,
            examples=selector,
            example_template=variant.example_template or file.example_template,
            params=params,
            strategy=strategy,
        )
    except ConfigurationError as exc:
        raise ConfigFileError(source, where, str(exc)) from exc
    return prompt, spec


def _metric(spec: Any, source: Path, where: Loc, backends: Backends, judge_model: str | None) -> tuple[Metric, bool]:
    """One metric entry built, and whether it is an LLM judge."""
    from .. import _eval
    from .._files import _object_model, _spec_errors

    name, options = named_options(spec, METRICS, "metric", source, where)
    given = options.model_dump(exclude_unset=True, exclude_none=True, exclude={"schema_"})
    built: Any
    try:
        if name == "judge":
            assert isinstance(options, JudgeOptions)
            judge_spec = judge_model or given.pop("model", None)
            given.pop("model", None)  # --judge-model wins
            if judge_spec is None:
                raise ConfigFileError(
                    source, (*where, name), "a judge needs 'model: PROVIDER:MODEL' (or pass --judge-model)"
                )
            backend = _backend(backends, judge_spec, source, (*where, name, "model"))
            built = _eval.LLMJudge(backend, given.pop("rubric"), **given)
        elif name == "schema_valid":
            assert isinstance(options, SchemaOptions)
            try:
                schema = _object_model(options.schema_, "Expected")
            except _spec_errors() as exc:  # the same schema language as a .prompt file's output
                raise ConfigFileError(source, (*where, name, "schema"), str(exc)) from exc
            built = _eval.SchemaValid(schema, **given)
        else:
            factory = {
                "exact_match": _eval.ExactMatch,
                "contains": _eval.Contains,
                "regex": _eval.RegexMatch,
                "choice_accuracy": _eval.ChoiceAccuracy,
                "numeric": _eval.NumericMatch,
                "json_valid": _eval.JSONValid,
                "field_match": _eval.FieldMatch,
                "token_f1": _eval.TokenF1,
            }[name]
            built = factory(**given)
    except (ConfigurationError, EvaluationError) as exc:
        raise ConfigFileError(source, (*where, name), str(exc)) from exc
    metric: Metric = built
    return metric, name == "judge"


def _dataset(spec: DatasetSpec, source: Path) -> Dataset:
    from .._eval import load_dataset

    path = _file(source, spec.path, ("dataset",), "dataset file")
    try:
        return load_dataset(path, inputs=spec.inputs, expected=spec.expected, id=spec.id, metadata=spec.metadata)
    except DatasetError as exc:
        raise ConfigFileError(source, ("dataset",), str(exc)) from exc


def load_config(
    source: Path,
    *,
    make_backend: Callable[[str], Backend],
    model: str | None = None,
    judge_model: str | None = None,
) -> Plan:
    """Read, check and build the config at ``source``: every problem raises :class:`ConfigFileError`.

    ``model`` (``--model``) replaces every variant's backend, ``judge_model`` every judge's;
    ``make_backend`` turns a spec into a backend (one per spec, shared).
    """
    from .._eval._reduce import resolve_reducer

    config = validated(ConfigSpec, read_config(source), source)
    try:
        resolve_reducer(config.reducer, config.epochs)
    except EvaluationError as exc:
        raise ConfigFileError(source, ("reducer",), str(exc)) from exc
    for position, name in enumerate(config.compare or ()):
        if name not in config.variants:
            raise ConfigFileError(source, ("compare", position), unknown("variant", name, list(config.variants)))
    if config.compare is not None and config.compare[0] == config.compare[1]:
        raise ConfigFileError(source, ("compare",), "compare two different variants")
    backends = Backends(make_backend)
    dataset = _dataset(config.dataset, source)
    variants: dict[str, Prompt[Any]] = {}
    specs: dict[str, str] = {}
    for name, variant in config.variants.items():
        variants[name], specs[name] = _variant(name, variant, config, source, backends=backends, model=model)
    metrics: list[Metric] = []
    judges = 0
    for position, entry in enumerate(config.metrics):
        metric, judged = _metric(entry, source, ("metrics", position), backends, judge_model)
        taken = [m.name for m in metrics]
        if metric.name in taken:
            raise ConfigFileError(
                source,
                ("metrics", position),
                f"metrics[{taken.index(metric.name)}] is named {metric.name!r} too; give this one 'name: ...'",
            )
        metrics.append(metric)
        judges += judged
    if judge_model is not None and not judges:
        click.echo(f"promptkit: warning: --judge-model {judge_model}: {source.name} has no judge metric", err=True)
    options: dict[str, Any] = {
        "epochs": config.epochs,
        "reducer": config.reducer,
        "max_concurrency": config.max_concurrency,
        "max_cost": config.max_cost,
        "max_tokens_total": config.max_tokens_total,
        "requests_per_minute": config.requests_per_minute,
        "tokens_per_minute": config.tokens_per_minute,
        "confidence": config.confidence,
        "exclude_similar": config.exclude_similar,
        "checkpoint": source.parent / config.checkpoint if config.checkpoint else None,
    }
    compare = (config.compare[0], config.compare[1]) if config.compare else None
    return Plan(source, variants, dataset, metrics, options, compare, judges, specs)
