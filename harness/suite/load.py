"""Reading a suite file: TOML, ${VAR} / ${VAR:-default} from the environment, `--set key.path=value`
overrides, validation, and one message per problem naming the file, the field and the fix."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import InvalidInput
from harness.suite.matrix import Suite, did_you_mean
from harness.textio import read_text_utf8

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_suite(path: str | Path, overrides: list[str] = (), *, require_env: bool = True) -> Suite:
    """Read, expand ${VAR} / ${VAR:-default}, apply `key.path=value` overrides, validate.

    With require_env=False (validate, plan) an unset ${VAR} without default stays as written,
    so a suite whose paths come from the cluster's environment still validates on a laptop.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: suite file not found; pass the path to a .toml suite (see suites/)")
    try:
        raw = tomllib.loads(_suite_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: malformed TOML: {exc}; fix the syntax at that line") from None
    for item in overrides:
        _apply_override(raw, item, path)
    raw = _expand(raw, path, (), require_env)
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(path, exc)) from None


def unresolved_variables(path: str | Path, overrides: list[str] = ()) -> list[str]:
    """Names of ${VAR}s without default that the environment and overrides leave unset."""
    raw = tomllib.loads(_suite_text(Path(path)))
    for item in overrides:
        _apply_override(raw, item, Path(path))
    missing: list[str] = []
    _walk_strings(
        raw,
        lambda s: missing.extend(
            m.group(1) for m in _VAR.finditer(s) if m.group(2) is None and m.group(1) not in os.environ
        ),
    )
    return sorted(set(missing))


def _suite_text(path: Path) -> str:
    return read_text_utf8(path, "the suite file", "save the suite file as UTF-8 (TOML files are UTF-8)")


def _walk_strings(node: Any, visit) -> None:
    if isinstance(node, dict):
        for value in node.values():
            _walk_strings(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk_strings(value, visit)
    elif isinstance(node, str):
        visit(node)


def _expand(node: Any, path: Path, loc: tuple, require_env: bool) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, path, (*loc, k), require_env) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, path, (*loc, i), require_env) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _VAR.sub(lambda m: _lookup(m, path, loc, require_env), node)
    return node


def _lookup(match: re.Match, path: Path, loc: tuple, require_env: bool) -> str:
    name, default = match.group(1), match.group(2)
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    if not require_env:
        return match.group(0)
    field = ".".join(map(str, loc))
    raise InvalidInput(
        f"{path}: {field}: environment variable {name} is not set; export {name}=... or pass --set {field}=..."
    )


def _apply_override(raw: dict, item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidInput(f"--set {item!r}: expected key.path=value, e.g. --set model.path=/models/Qwen2.5-7B")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare string such as a path
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InvalidInput(f"{path}: --set {key}: {part} is not a table")
    if value == "null":  # TOML has no null: `--set key=null` removes the key, so its default applies
        node.pop(parts[-1], None)
        return
    node[parts[-1]] = parsed


def format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    errors = exc.errors()
    # A misspelt required key also shows up as "Field required" for the right name: say it once.
    misspelt = {
        (*err["loc"][:-1], close[0])
        for err in errors
        if err["type"] == "extra_forbidden"
        and (close := difflib.get_close_matches(str(err["loc"][-1]), _fields_at(Suite, err["loc"][:-1]), 1, 0.6))
    }
    for err in errors:
        is_key = err["loc"][-1:] == ("[key]",)  # a dict key (stage, arm, benchmark name) failed
        loc = ".".join(str(p) for p in err["loc"][: -2 if is_key else None]) or "(top level)"
        if err["type"] == "missing" and tuple(err["loc"]) in misspelt:
            continue
        if err["type"] == "extra_forbidden":
            known = _fields_at(Suite, err["loc"][:-1])
            hint = did_you_mean(str(err["loc"][-1]), known)
            lines.append(f"{path}: {loc}: unknown key{hint}; remove it or use one of: {', '.join(known)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            quoted = isinstance(got, dict | list) or got is None or (isinstance(got, str) and repr(got) in msg)
            shown = "" if quoted else f" (got {got!r})"
            where = f"{loc}: " if err["loc"] else ""  # suite-wide checks name their fields themselves
            lines.append(f"{path}: {where}{msg}{shown}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model reached by following loc; dict keys (stage names) are stepped over."""
    current: Any = model
    in_dict = False
    for part in loc:
        if in_dict:
            in_dict = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
        if getattr(annotation, "__origin__", None) is dict:
            current, in_dict = annotation.__args__[1], True
        else:
            current = annotation
    if isinstance(current, type) and issubclass(current, BaseModel) and not in_dict:
        return list(current.model_fields)
    return []
