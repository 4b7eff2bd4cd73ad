"""Check real HTTP answers against a service's OpenAPI description: the status is one the operation declares,
and a JSON body matches the schema declared for that status.

The descriptions are OpenAPI 3.1, whose schemas are JSON Schema 2020-12, so ``jsonschema`` validates bodies
directly; a ``$ref`` resolves within the description.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class Contract:
    """One service's description, to look operations up and check answers against."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.description = description
        self._templates = [
            (re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in description["paths"]
        ]

    def schema_errors(self) -> list[str]:
        """What is wrong with the description itself: not 3.x, an operation with no responses, a schema
        that is not JSON Schema, or a ``$ref`` that points nowhere."""
        problems = [] if str(self.description.get("openapi", "")).startswith("3.") else ["not OpenAPI 3"]
        for path, item in self.description["paths"].items():
            for method, operation in item.items():
                if method in METHODS and not operation.get("responses"):
                    problems.append(f"{method.upper()} {path} declares no responses")
        for where, schema in _schemas(self.description):
            try:
                Draft202012Validator.check_schema(schema)
            except Exception as exc:  # jsonschema.SchemaError: say where
                problems.append(f"{where}: {str(exc).splitlines()[0]}")
        for ref in _refs(self.description):
            try:
                self.resolve(ref)
            except KeyError:
                problems.append(f"unresolved $ref {ref}")
        return problems

    def resolve(self, ref: str) -> Any:
        node: Any = self.description
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def operation(self, method: str, url_path: str) -> tuple[str, dict[str, Any]]:
        """The path template and operation that serve ``method url_path`` (literal paths win)."""
        matches = [template for pattern, template in self._templates if pattern.match(url_path)]
        matches.sort(key=lambda template: template.count("{"))
        for template in matches:
            operation = self.description["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
        raise AssertionError(f"{method.upper()} {url_path} is not in the description")

    def check(self, response: httpx.Response) -> None:
        """Assert that ``response`` is an answer its operation declares, with a body of the declared shape."""
        request = response.request
        template, operation = self.operation(request.method, request.url.path)
        where = f"{request.method} {template} -> {response.status_code}"
        declared = operation["responses"]
        spec = declared.get(str(response.status_code)) or declared.get("default")
        assert spec is not None, f"{where}: status not declared (declared: {sorted(declared)})"
        spec = self.resolve(spec["$ref"]) if "$ref" in spec else spec
        schema = (spec.get("content") or {}).get("application/json", {}).get("schema")
        if schema is None:
            return
        assert response.headers.get("content-type", "").startswith("application/json"), where
        validator = Draft202012Validator({**schema, "components": self.description.get("components", {})})
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(response.json())
        ]
        assert not errors, f"{where}: body does not match the declared schema: {errors[:3]}"


def _schemas(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every ``schema`` object and every ``components/schemas`` entry, with where it is."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if key == "schema" and isinstance(value, dict):
                found.append((here, value))
            elif key == "schemas" and where.endswith("/components") and isinstance(value, dict):
                found.extend((f"{here}/{name}", schema) for name, schema in value.items())
            else:
                found.extend(_schemas(value, here))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_schemas(value, f"{where}/{i}"))
    return found


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        refs = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return refs + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []
