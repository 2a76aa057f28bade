"""Configuration: loading YAML/JSON/dicts, ``${VAR}`` expansion, and plugin config schemas.

The schema dialect is the one of the architecture document: a mapping of field name to a rule
mapping with ``type``, ``required``, ``default``, ``pattern``, ``minimum``, ``maximum``, ``enum`` and
``description``. PyHeart adds ``secret`` (the value must come from an environment reference and is
wrapped in :class:`Secret`), ``properties`` (for ``type: object``) and ``items`` (for
``type: array``); ``additional: true`` on a schema node allows keys it does not declare. Unknown
keys are rejected everywhere else.

Errors name the field path and the rule, never the value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pyheart.broker.errors import ConfigError, ConfigIssue, MissingEnvironmentError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Secret:
    """A secret value whose ``repr`` and ``str`` are masked. Call :meth:`get` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret itself; never log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class Expanded:
    """Result of :func:`expand_env`: the data, and which paths held environment references."""

    def __init__(self, data: Any, env_paths: set[str]) -> None:
        self.data = data
        self.env_paths = env_paths


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def expand_env(data: Any, environ: Mapping[str, str] | None = None, path: str = "") -> Expanded:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of ``data``.

    All missing variables are collected and raised together as :class:`MissingEnvironmentError`.
    """
    env = os.environ if environ is None else environ
    missing: list[tuple[str, str]] = []
    env_paths: set[str] = set()

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, str):
            if "${" not in node:
                return node

            def sub(match: re.Match[str]) -> str:
                var, default = match.group(1), match.group(2)
                value = env.get(var)
                if value is None or (value == "" and default is not None):
                    if default is not None:
                        return default
                    missing.append((var, where or "<root>"))
                    return ""
                return value

            env_paths.add(where)
            return _ENV_REF.sub(sub, node)
        if isinstance(node, Mapping):
            return {k: walk(v, _join(where, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, _join(where, i)) for i, v in enumerate(node)]
        return node

    result = walk(data, path)
    if missing:
        raise MissingEnvironmentError(missing)
    return Expanded(result, env_paths)


def load_document(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read a configuration from a YAML file, a JSON file, or a mapping (copied, not expanded)."""
    if isinstance(source, Mapping):
        return json.loads(json.dumps(source, default=_json_default))  # type: ignore[no-any-return]
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _json_default(obj: object) -> object:
    if isinstance(obj, Secret):
        return obj
    raise TypeError(type(obj).__name__)


# --------------------------------------------------------------------------------------- schemas
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
_RULE_KEYS = frozenset(
    {
        "type",
        "required",
        "default",
        "pattern",
        "minimum",
        "maximum",
        "enum",
        "description",
        "secret",
        "properties",
        "items",
        "additional",
        "min_length",
        "max_length",
    }
)


def check_schema(schema: Mapping[str, Any], where: str = "config_schema") -> list[ConfigIssue]:
    """Check that a schema is itself well formed (a plugin author's error, found at registration)."""
    issues: list[ConfigIssue] = []
    for name, rule in schema.items():
        path = _join(where, name)
        if not isinstance(rule, Mapping):
            issues.append(ConfigIssue(path, "schema", "a field rule must be a mapping"))
            continue
        for key in rule:
            if key not in _RULE_KEYS:
                issues.append(ConfigIssue(path, "schema", f"unknown rule '{key}'"))
        kind = rule.get("type")
        if kind is not None and kind not in _TYPES:
            issues.append(ConfigIssue(path, "schema", f"unknown type '{kind}'"))
        if "pattern" in rule:
            try:
                re.compile(rule["pattern"])
            except (re.error, TypeError):
                issues.append(ConfigIssue(path, "schema", "pattern is not a regular expression"))
        if isinstance(rule.get("properties"), Mapping):
            issues.extend(check_schema(rule["properties"], f"{path}.properties"))
        if isinstance(rule.get("items"), Mapping):
            issues.extend(check_schema({"items": rule["items"]}, path))
    return issues


def validate_config(
    schema: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    env_paths: set[str] | None = None,
    path: str = "",
    allow_unknown: bool = False,
) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """Validate ``config`` against ``schema``; return the config with defaults applied and the issues.

    ``env_paths`` are the paths (relative to ``config``) whose values came from environment
    references; a ``secret`` field must be one of them. ``None`` means the config was built in code,
    where a secret may be given as a :class:`Secret` or a plain string (then wrapped).
    """
    issues: list[ConfigIssue] = []
    out: dict[str, Any] = {}
    if not allow_unknown:
        for key in config:
            if key not in schema:
                issues.append(ConfigIssue(_join(path, key), "unknown", "unknown key"))
    else:
        out.update({k: v for k, v in config.items() if k not in schema})
    for name, rule in schema.items():
        fpath = _join(path, name)
        if name not in config or config[name] is None:
            if "default" in rule:
                out[name] = _copy(rule["default"])
            elif rule.get("required", False):
                issues.append(ConfigIssue(fpath, "required", "is required"))
            continue
        value, sub = _check_value(rule, config[name], fpath, env_paths)
        issues.extend(sub)
        out[name] = value
    return out, issues


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _check_value(
    rule: Mapping[str, Any], value: Any, path: str, env_paths: set[str] | None
) -> tuple[Any, list[ConfigIssue]]:
    issues: list[ConfigIssue] = []
    kind = rule.get("type")
    if rule.get("secret"):
        if isinstance(value, Secret):
            return value, issues
        if env_paths is not None and path not in env_paths:
            issues.append(
                ConfigIssue(path, "secret", "must be an environment reference such as ${VAR}, not a literal")
            )
            return Secret(str(value)), issues
        kind = kind or "string"
    if kind is not None:
        expected = _TYPES[kind]
        ok = isinstance(value, expected) and not (kind in ("integer", "number") and isinstance(value, bool))
        from_env = env_paths is not None and path in env_paths
        if not ok and kind in ("integer", "number", "boolean") and isinstance(value, str) and from_env:
            # Values from environment variables arrive as strings: coerce them once, here.
            value, ok = _coerce(kind, value)
        if not ok:
            issues.append(ConfigIssue(path, "type", f"must be of type {kind}"))
            return value, issues
    if "enum" in rule and value not in rule["enum"]:
        allowed = ", ".join(str(v) for v in rule["enum"])
        issues.append(ConfigIssue(path, "enum", f"must be one of: {allowed}"))
    if "pattern" in rule and isinstance(value, str) and re.search(rule["pattern"], value) is None:
        issues.append(ConfigIssue(path, "pattern", f"must match the pattern {rule['pattern']}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in rule and value < rule["minimum"]:
            issues.append(ConfigIssue(path, "minimum", f"must be >= {rule['minimum']}"))
        if "maximum" in rule and value > rule["maximum"]:
            issues.append(ConfigIssue(path, "maximum", f"must be <= {rule['maximum']}"))
    if isinstance(value, str | list):
        if "min_length" in rule and len(value) < rule["min_length"]:
            issues.append(ConfigIssue(path, "min_length", f"must have length >= {rule['min_length']}"))
        if "max_length" in rule and len(value) > rule["max_length"]:
            issues.append(ConfigIssue(path, "max_length", f"must have length <= {rule['max_length']}"))
    if isinstance(value, dict) and "properties" in rule:
        value, sub = validate_config(
            rule["properties"],
            value,
            env_paths=env_paths,
            path=path,
            allow_unknown=bool(rule.get("additional", False)),
        )
        issues.extend(sub)
    if isinstance(value, list) and isinstance(rule.get("items"), Mapping):
        checked = []
        for i, item in enumerate(value):
            item_value, sub = _check_value(rule["items"], item, f"{path}[{i}]", env_paths)
            issues.extend(sub)
            checked.append(item_value)
        value = checked
    if rule.get("secret") and not issues:
        value = Secret(str(value))
    return value, issues


def _coerce(kind: str, value: str) -> tuple[Any, bool]:
    text = value.strip()
    if kind == "boolean":
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True, True
        if low in ("false", "0", "no", "off"):
            return False, True
        return value, False
    try:
        return (int(text) if kind == "integer" else float(text)), True
    except ValueError:
        return value, False


__all__ = [
    "Expanded",
    "Secret",
    "check_schema",
    "expand_env",
    "load_document",
    "validate_config",
]
