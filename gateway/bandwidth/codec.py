"""The XML codec for the carrier's schemas: ``record -> bytes`` and ``bytes -> record``, no I/O.

Writing follows OpenAPI's default XML mapping exactly: the root is the
schema's name, children are the property names as the carrier spells them, arrays are
unwrapped (one element per item, named after the property), booleans ``true``/``false``,
numbers in plain decimal, absent values omitted.

Reading is tolerant: any root name, wrapped or unwrapped lists, unknown elements
ignored, element names matched without regard to case or namespace. It parses only
with defusedxml (no DTDs, no entities, no external references) and only bodies up to
a size limit. ``response_status`` finds a carrier error body anywhere in a document.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import xml.etree.ElementTree as ET  # writing only; parsing goes through defusedxml
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from gateway.bandwidth.errors import CodecError
from gateway.bandwidth.models import Record, wire_name
from gateway.xmlsafe import DECLARATION as _DECLARATION
from gateway.xmlsafe import checked, escaped_text, local_name, parse_untrusted, serialize

#: Largest XML body the codec will parse.
MAX_XML_BYTES = 1024 * 1024

R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class ResponseStatus:
    """The carrier's error body: ``<ResponseStatus><ErrorCode/><Description/></ResponseStatus>``."""

    code: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    wire: str
    kind: type
    is_list: bool


def _fields(cls: type) -> tuple[_Field, ...]:
    known = _FIELDS.get(cls)
    if known is not None:
        return known
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        origin = typing.get_origin(hint)
        if origin is tuple:
            out.append(_Field(f.name, wire_name(f.name), args[0], True))
        else:
            kind = args[0] if args else hint
            out.append(_Field(f.name, wire_name(f.name), kind, False))
    _FIELDS[cls] = tuple(out)
    _BY_WIRE[cls] = {f.wire.lower(): f for f in out}
    return _FIELDS[cls]


def _by_wire(cls: type) -> dict[str, _Field]:
    if cls not in _BY_WIRE:
        _fields(cls)
    return _BY_WIRE[cls]


_FIELDS: dict[type, tuple[_Field, ...]] = {}
_BY_WIRE: dict[type, dict[str, _Field]] = {}


# -- writing -----------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"cannot write a non-finite number: {value!r}")
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    if isinstance(value, int):
        return str(value)
    return checked(str(value), CodecError)


def _element(out: list[str], tag: str, record: Any) -> None:
    """``<tag>``, the record's fields, ``</tag>``; ``<tag />`` for a record with none."""
    start = len(out)
    out.append(f"<{tag}>")
    _write(out, record)
    if len(out) == start + 1:
        out[start] = f"<{tag} />"
    else:
        out.append(f"</{tag}>")


def _write(out: list[str], record: Any) -> None:
    for f in _fields(type(record)):
        value = getattr(record, f.name)
        if value is None:
            continue
        if f.is_list:
            for item in value:
                _element(out, f.wire, item)
        elif dataclasses.is_dataclass(f.kind):
            _element(out, f.wire, value)
        else:
            text = _text(value)
            out.append(f"<{f.wire}>{escaped_text(text)}</{f.wire}>" if text else f"<{f.wire} />")


def encode(record: Record) -> bytes:
    """The record as the carrier's XML, rooted at its schema's name: the bytes ElementTree
    and ``xmlsafe.serialize`` write for it (``tests/bandwidth/test_codec.py`` holds the two
    equal), written directly, at a fraction of the cost of building the tree."""
    out: list[str] = []
    _element(out, type(record).__name__, record)
    return _DECLARATION + "".join(out).encode("utf-8")


def encode_response_status(code: str, description: str) -> bytes:
    """A carrier-style error body."""
    root = ET.Element("ResponseStatus")
    ET.SubElement(root, "ErrorCode").text = _text(code)
    ET.SubElement(root, "Description").text = _text(description)
    return serialize(root)


# -- reading -----------------------------------------------------------------


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> ET.Element:
    """Parse an untrusted XML body: size-limited, no DTDs, no entities."""
    return parse_untrusted(data, max_bytes=max_bytes, error=CodecError)


def _scalar(kind: type, text: str, where: str) -> object:
    if kind is str:
        return text
    if not text:  # <latitude/>: no value, as if the element were absent
        return None
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
    except ValueError:
        raise CodecError(f"<{where}> is not a valid {kind.__name__}: {text[:40]!r}") from None
    raise TypeError(f"unsupported field type {kind!r}")  # pragma: no cover - schema bug


def _items(element: ET.Element, item_cls: type) -> list[ET.Element]:
    """One list element: an item itself (unwrapped form), or a wrapper of items."""
    children = [c for c in element if local_name(c.tag)]
    if not children:
        return []
    known = _by_wire(item_cls)
    if any(local_name(c.tag) in known for c in children):
        return [element]
    return children


def from_element(cls: type[R], element: ET.Element) -> R:
    """Read a record of ``cls`` from an element, whatever the element is named."""
    fields = _by_wire(cls)
    values: dict[str, Any] = {}
    lists: dict[str, list[Any]] = {}
    for child in element:
        f = fields.get(local_name(child.tag))
        if f is None:
            continue
        if f.is_list:
            bucket = lists.setdefault(f.name, [])
            bucket.extend(from_element(f.kind, item) for item in _items(child, f.kind))
        elif f.name in values:
            continue
        elif dataclasses.is_dataclass(f.kind):
            values[f.name] = from_element(f.kind, child)  # type: ignore[type-var]
        else:
            value = _scalar(f.kind, (child.text or "").strip(), f.wire)
            if value is not None:
                values[f.name] = value
    for name, items in lists.items():
        values[name] = tuple(items)
    return cls(**values)


def record_element(root: ET.Element, cls: type[Record]) -> ET.Element:
    """The element holding a record of ``cls``: ``root``, or its one child named after ``cls``
    when ``root`` only wraps it."""
    known = _by_wire(cls)
    children = [c for c in root if local_name(c.tag)]
    if any(local_name(c.tag) in known for c in children):
        return root
    if len(children) == 1 and local_name(children[0].tag) == cls.__name__.lower():
        return children[0]
    return root


def decode(cls: type[R], data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> R:
    """Parse and read one record; raises ``CodecError`` for anything unreadable."""
    return from_element(cls, parse(data, max_bytes=max_bytes))


def response_status(root: ET.Element) -> ResponseStatus | None:
    """The carrier's error, wherever it sits in the document; ``None`` when there is none.

    An ``<ErrorCode>`` anywhere is an error (its sibling ``<Description>`` describes it),
    and so is a ``<ResponseStatus>`` element even without a code (``code`` is then
    ``None``: a 2xx carrying it refuses nothing, ``CarrierCalls._refusal``).
    """
    if local_name(root.tag) == "errorcode":
        return ResponseStatus(_stripped(root), None)
    bare: ET.Element | None = None  # the first <ResponseStatus> without a code of its own
    for parent in root.iter():
        code = _child(parent, "errorcode")
        if code is not None:
            return ResponseStatus(_stripped(code), _stripped(_child(parent, "description")))
        if bare is None and local_name(parent.tag) == "responsestatus":
            bare = parent
    if bare is not None:
        return ResponseStatus(None, _stripped(_child(bare, "description")))
    return None


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if local_name(c.tag) == name), None)


def _stripped(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip() or None
