"""JSON schemas that providers' strict structured-output modes accept, made from pydantic types.

OpenAI's strict mode wants every object closed (``additionalProperties: false``) with every
property listed in ``required``; optional fields stay nullable (``anyOf`` with ``null``) instead of
being left out. It has no ``oneOf`` (a discriminated union becomes ``anyOf``) and no ``$ref`` with
sibling keywords (those are inlined). ``None`` defaults are dropped: a nullable field says it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .._errors import ConfigurationError

__all__ = ["schema_name", "strict_json_schema"]


def strict_json_schema(target: Any) -> dict[str, Any]:
    """The strict-mode JSON schema of a pydantic model, dataclass, TypedDict or type.

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    ...     mayor: str | None = None
    >>> s = strict_json_schema(City)
    >>> s["required"], s["additionalProperties"]
    (['name', 'mayor'], False)
    """
    import pydantic

    try:
        if isinstance(target, type) and issubclass(target, pydantic.BaseModel):
            schema = target.model_json_schema()
        else:
            schema = pydantic.TypeAdapter(target).json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise ConfigurationError(f"cannot make a JSON schema for {target!r}: {exc}") from exc
    schema = copy.deepcopy(schema)
    result: dict[str, Any] = _strict(schema, schema, 0)
    return result


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ConfigurationError(f"unsupported $ref {ref!r} in schema")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    if not isinstance(node, dict):
        raise ConfigurationError(f"$ref {ref!r} does not point to a schema")
    return node


def _strict(node: Any, root: dict[str, Any], depth: int) -> Any:
    if depth > 100:
        raise ConfigurationError("schema nests too deeply to be made strict")
    if not isinstance(node, dict):
        return node
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            for name in defs:
                defs[name] = _strict(defs[name], root, depth + 1)
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    props = node.get("properties")
    if isinstance(props, dict):
        node["required"] = list(props)
        for name in props:
            props[name] = _strict(props[name], root, depth + 1)
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"], root, depth + 1)
    if isinstance(node.get("prefixItems"), list):
        node["prefixItems"] = [_strict(v, root, depth + 1) for v in node["prefixItems"]]
    if isinstance(node.get("oneOf"), list):
        node["anyOf"] = node.pop("oneOf")
        node.pop("discriminator", None)
    if isinstance(node.get("anyOf"), list):
        node["anyOf"] = [_strict(v, root, depth + 1) for v in node["anyOf"]]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            node.pop("allOf")
            node.update(_strict(all_of[0], root, depth + 1))
        else:
            node["allOf"] = [_strict(v, root, depth + 1) for v in all_of]
    if "default" in node and node["default"] is None:
        del node["default"]
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        resolved = _resolve(root, ref)
        merged = {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        node.clear()
        node.update(copy.deepcopy(merged))
        return _strict(node, root, depth + 1)
    return node


def schema_name(target: Any) -> str:
    """A provider-safe schema name (``[A-Za-z0-9_-]{1,64}``) for a type."""
    raw = getattr(target, "__name__", None) or "output"
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)[:64] or "output"
