"""Declared template inputs: a pydantic model or a dict of types, validated before rendering."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, TemplateInputError
from .._utils import is_model_class

if TYPE_CHECKING:
    from typing import TypeAlias

    import pydantic

    InputsSpec: TypeAlias = type[pydantic.BaseModel] | Mapping[str, Any]
    """A pydantic model, or ``{"name": type}`` / ``{"name": (type, default)}``."""

__all__ = ["InputsSpec", "input_model", "validate_inputs"]


def __getattr__(name: str) -> Any:
    # pydantic loads only when a template declares inputs, so the alias is built on demand.
    if name == "InputsSpec":
        import pydantic

        return type[pydantic.BaseModel] | Mapping[str, Any]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def input_model(inputs: InputsSpec | None, *, name: str | None) -> type[pydantic.BaseModel] | None:
    """The pydantic model that validates ``inputs`` (built once per template)."""
    if inputs is None:
        return None
    if is_model_class(inputs):
        return inputs
    if isinstance(inputs, Mapping):
        fields: dict[str, Any] = {}
        for key, spec in inputs.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ConfigurationError(f"template input names must be identifiers, not {key!r}")
            fields[key] = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, ...)
        import pydantic

        try:
            return pydantic.create_model("TemplateInputs", **fields)
        except (pydantic.PydanticSchemaGenerationError, TypeError) as exc:
            raise ConfigurationError(f"invalid template inputs for {name or 'template'}: {exc}") from exc
    raise ConfigurationError(f"inputs must be a pydantic model or a dict of types, not {inputs!r:.80}")


def _summary(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<inputs>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def validate_inputs(model: type[pydantic.BaseModel], values: Mapping[str, Any], *, name: str | None) -> dict[str, Any]:
    """``values`` with the declared ones validated and coerced; undeclared ones pass through."""
    import pydantic

    fields = model.model_fields
    data = {k: values[k] for k in fields if k in values}
    try:
        validated = model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise TemplateInputError(f"invalid template inputs: {_summary(exc)}", template=name) from exc
    out = dict(values)
    for key in fields:
        out[key] = getattr(validated, key)
    return out
