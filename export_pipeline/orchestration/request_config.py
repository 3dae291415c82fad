"""The export job's config schema, generated from the request models, so the Launchpad knows
the request: its fields and their descriptions, what is required (and what to scaffold), and
which field is unknown or of the wrong type, before a run exists.

The models stay the one source of truth: their JSON schema (pydantic's own reading of aliases,
types, required fields and docstrings) is walked into Dagster config types. Where Dagster
config has no exact type (a value that may be a string or a list, a port that may be a number
or a string) the node is ``Any`` and the plan step's validation decides; a string-or-object
(``format``) is a ``ScalarUnion``. Defaults are named in the descriptions, not set as Dagster
defaults, so the request reaches the plan step as it was written.

The root takes a body or its envelope (``{"action", "data": {"id", "route", "body"}}``) as
they are. Dagster config has no union of two objects, so the body's ``csvFormat`` and
``metricRequests`` are optional at the root and required inside ``data.body``; a root with
neither the body's required fields nor ``data`` is refused by the job's config mapping
(``missing_request_fields``), when the run is created, before any step.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import dagster as dg

from export_pipeline.contract.envelope import REQUEST_ID_PATTERN, ROUTE
from export_pipeline.contract.models import ExportRequest

def _resolve(node: dict, defs: dict) -> dict:
    while "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _description(node: dict) -> str | None:
    text = node.get("description")
    default = node.get("default")
    if default is not None and not isinstance(default, dict | list):
        shown = default if isinstance(default, str) else json.dumps(default)
        text = f"{text or ''} Default: {shown}.".strip()
    return text


class _Walker:
    """One walk of one JSON schema; enums are named types, made once each."""

    def __init__(self, schema: dict):
        self.defs = schema.get("$defs", {})
        self.enums: dict[str, dg.Enum] = {}

    def config_type(self, node: dict) -> Any:
        node = _resolve(node, self.defs)
        if "anyOf" in node:
            return self._union([_resolve(n, self.defs) for n in node["anyOf"]])
        if "enum" in node:
            name = node.get("title") or "_".join(map(str, node["enum"]))
            if name not in self.enums:
                self.enums[name] = dg.Enum(name, [dg.EnumValue(str(v)) for v in node["enum"]])
            return self.enums[name]
        kind = node.get("type")
        if kind == "object":
            if "properties" in node:
                return self.shape(node)
            values = node.get("additionalProperties")
            return dg.Map(str, self.config_type(values)) if isinstance(values, dict) else dg.Permissive()
        if kind == "array":
            return dg.Array(self.config_type(node.get("items", {})))
        return {"string": dg.String, "integer": dg.Int, "number": dg.Float, "boolean": dg.Bool}.get(
            kind, dg.Any
        )

    def _union(self, members: list[dict]) -> Any:
        nullable = any(m.get("type") == "null" for m in members)
        members = [m for m in members if m.get("type") != "null"]
        kinds = {m.get("type") for m in members}
        if len(members) == 1:
            inner = self.config_type(members[0])
        elif kinds == {"integer", "number"}:
            inner = dg.Float
        elif kinds == {"string", "object"} and all("enum" not in m for m in members):
            obj = next(m for m in members if m.get("type") == "object")
            inner = dg.ScalarUnion(scalar_type=dg.String, non_scalar_schema=self.config_type(obj))
        else:
            inner = dg.Any
        return dg.Noneable(inner) if nullable and inner is not dg.Any else inner

    def field(self, node: dict, required: bool, description: str | None = None) -> dg.Field:
        return dg.Field(
            self.config_type(node), is_required=required,
            description=description or _description(_resolve(node, self.defs)),
        )

    def shape(self, node: dict, optional: tuple[str, ...] = (), **extra: dg.Field) -> dg.Shape:
        required = set(node.get("required", [])) - set(optional)
        fields = {
            name: self.field(prop, name in required) for name, prop in node["properties"].items()
        }
        return dg.Shape({**fields, **extra}, description=node.get("description"))


@cache
def _request_schema() -> dict:
    return ExportRequest.model_json_schema(by_alias=True, mode="validation")


def missing_request_fields(document: dict) -> list[str]:
    """The body's required fields a run config without an envelope leaves out."""
    if "data" in document:
        return []
    return [name for name in _request_schema().get("required", []) if name not in document]


def request_config_schema() -> dg.Shape:
    """The export job's run config: a request body, or its envelope, as it is on the wire."""
    schema = _request_schema()
    walker = _Walker(schema)
    required = tuple(schema.get("required", []))
    body = walker.shape(schema)
    envelope = dg.Shape({
        "id": dg.Field(dg.String, is_required=False, description=(
            f"The request id ({REQUEST_ID_PATTERN}): names the file and its asset, exports/<id>."
        )),
        "route": dg.Field(dg.String, is_required=False, description=f"If given: {ROUTE}."),
        "body": dg.Field(body, description="The request: csvFormat, metricRequests and more."),
    })
    root = dict(schema)
    root["properties"] = {
        name: {**prop, "description": f"{prop.get('description', '')} Required (or give data.body)."}
        if name in required else prop
        for name, prop in schema["properties"].items()
    }
    return walker.shape(
        root,
        optional=required,
        action=dg.Field(dg.String, is_required=False, description="The envelope's action, e.g. external-service."),
        data=dg.Field(envelope, is_required=False, description=(
            "The request envelope: the body under data.body, with an optional id and route. "
            "Give either data or the body's fields."
        )),
    )
