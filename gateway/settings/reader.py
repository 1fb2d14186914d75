"""How a declared setting is read: its field, its text's parser, bounds and README row.

``gateway.settings`` declares every setting with ``setting(...)``; ``read`` turns one
variable's text into its value, or raises ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Secret


class SettingsError(ValueError):
    """The configuration cannot start the service; the message says which setting and why."""


@dataclass(frozen=True)
class Declared:
    """How one setting is read: its variable, bounds, checks and README row."""

    env: str
    doc: str
    shown: str | None
    gt: float | None
    ge: float | None
    finite: bool
    clean: Callable[[str], str] | None
    check: Callable[[str, Any], None] | None
    blank_is_default: bool


def setting(
    env: str,
    default: Any,
    doc: str,
    *,
    shown: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    finite: bool = False,
    clean: Callable[[str], str] | None = None,
    check: Callable[[str, Any], None] | None = None,
    blank_is_default: bool = False,
    secret: bool = False,
) -> Any:
    """A setting's one declaration (a dataclass field); ``secret`` keeps a value out of the repr
    (``Secret`` values mask themselves)."""
    declared = Declared(env, doc, shown, gt, ge, finite, clean, check, blank_is_default)
    meta = {"setting": declared}
    if isinstance(default, dict):
        frozen = dict(default)
        return dataclasses.field(
            default_factory=lambda: dict(frozen), repr=not secret, metadata=meta
        )
    return dataclasses.field(default=default, repr=not secret, metadata=meta)


def stripped_lower(value: str) -> str:
    return value.strip().lower()


def one_of(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    """The check that a value is one of ``choices`` (at least two): "ENV must be a, b or c"."""
    named = f"{', '.join(choices[:-1])} or {choices[-1]}"

    def check(env: str, value: Any) -> None:
        if value not in choices:
            raise SettingsError(f"{env} must be {named}")

    return check


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _number(env: str, raw: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(raw)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{env}={raw!r} is not {noun}") from None
    if math.isnan(value):
        raise SettingsError(f"{env}={raw!r} is not a number")
    return value


def _bool(env: str, raw: str) -> bool:
    known = {"true": True, "1": True, "false": False, "0": False}
    try:
        return known[raw.strip().lower()]
    except KeyError:
        raise SettingsError(f"{env}={raw!r} is not true or false") from None


def _json_object(env: str, raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{env} is not valid JSON: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"{env} must be a JSON object")
    return parsed


#: A setting's annotation (as written) -> how its text becomes a value.
_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "str": lambda env, raw: raw,
    "str | None": lambda env, raw: raw or None,
    "float": lambda env, raw: _number(env, raw, float),
    "int": lambda env, raw: _number(env, raw, int),
    "bool": _bool,
    "Secret": lambda env, raw: Secret(raw),
    "Secret | None": lambda env, raw: Secret(raw) if raw else None,
    "tuple[str, ...]": lambda env, raw: _csv(raw),
    "tuple[Secret, ...]": lambda env, raw: tuple(Secret(k) for k in _csv(raw)),
    "Mapping[str, Any]": _json_object,
}


def _bounded(d: Declared, value: Any) -> Any:
    if d.gt is not None and not value > d.gt:
        raise SettingsError(f"{d.env} must be greater than {d.gt:g}")
    if d.ge is not None and not value >= d.ge:
        raise SettingsError(f"{d.env} must be {d.ge:g} or more")
    if d.finite and math.isinf(value):
        raise SettingsError(f"{d.env} must be a finite number")
    return value


def read(f: dataclasses.Field[Any], raw: str) -> tuple[bool, Any]:
    """``(True, value)`` of a declared field from its variable's text, or ``(False, None)``
    when the text means the default; ``SettingsError`` when it is not a value."""
    d: Declared = f.metadata["setting"]
    text = d.clean(raw) if d.clean is not None else raw
    if d.blank_is_default and not text:
        return False, None
    value = _PARSERS[str(f.type)](d.env, text)
    if d.gt is not None or d.ge is not None or d.finite:
        _bounded(d, value)
    if d.check is not None:
        d.check(d.env, value)
    return True, value


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    if isinstance(default, Mapping):
        return "`{}`" if not default else f"`{json.dumps(default)}`"
    if default is None or default == "" or default == () or str(default) == "":
        return "—"
    return f"`{default}`"


def markdown_table(rows: list[tuple[str, Any, Declared]]) -> str:
    """The README's configuration table of ``rows`` (attribute, default, declaration)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for _, default, d in rows:
        lines.append(f"| `{d.env}` | {d.shown or _shown(default)} | {d.doc} |")
    return "\n".join(lines) + "\n"
