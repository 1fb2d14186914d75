"""The gateway's one XML module: untrusted documents in, its own documents out.

Parsing is defusedxml only (no DTDs, no entities, no external references) under a size
limit checked first, for the carrier's answers and for PIDF-LO and HELD bodies alike; each
caller names the error it raises, so that its own layer answers it. Writing goes through
ElementTree (the carrier's records are written by ``gateway.bandwidth.codec`` directly, to
the bytes ElementTree writes), and text XML cannot carry is refused (or, for the simulator's
error bodies, dropped), never written.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET  # the element type and writing; parsing is defusedxml's

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

#: What every document the gateway writes starts with.
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

#: Characters XML 1.0 cannot carry, even escaped.
ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def parse_untrusted(data: bytes, *, max_bytes: int, error: type[Exception]) -> ET.Element:
    """The document's root, or ``error`` saying why not (too large, hostile, malformed)."""
    if len(data) > max_bytes:
        raise error(f"the document of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise error(f"refused hostile XML: {type(exc).__name__}") from None
    except (ET.ParseError, ValueError, LookupError, RecursionError) as exc:
        # LookupError: an unknown encoding in the declaration.
        raise error(f"malformed XML: {exc}") from None
    return root


def trim_namespaces(root: ET.Element) -> ET.Element:
    """``root`` with whitespace around namespace names removed, in place.

    RFC 4119's own example (and devices copying it) declares
    ``xmlns:cl=" urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"``; a URI cannot contain a
    space, so nothing else could have been meant.
    """
    for element in root.iter():
        tag = element.tag
        if isinstance(tag, str) and tag.startswith("{"):
            namespace, _, local = tag[1:].partition("}")
            if namespace != namespace.strip():
                element.tag = f"{{{namespace.strip()}}}{local}"
    return root


def local_name(tag: object) -> str:
    """A tag's name without its namespace, lower-cased; ``""`` for comments and PIs."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def text(element: ET.Element | None) -> str:
    """An element's text with whitespace collapsed: XML schema ``token`` semantics."""
    if element is None:
        return ""
    return _SPACES.sub(" ", "".join(element.itertext())).strip()


def checked(value: str, error: type[Exception] = ValueError) -> str:
    """``value`` when XML can carry it; ``error`` otherwise (never written silently)."""
    if ILLEGAL.search(value):
        raise error("text contains characters XML cannot carry")
    return value


def with_default_namespace(element: ET.Element, namespace: str) -> ET.Element:
    """A copy of ``element`` written with ``namespace`` as its default namespace.

    ElementTree's own ``default_namespace`` refuses unprefixed attributes (``entity``, ``id``),
    so the copy's tags in ``namespace`` are made local and ``xmlns`` is declared on it.
    """
    out = copy.deepcopy(element)
    prefix = f"{{{namespace}}}"
    for item in out.iter():
        if isinstance(item.tag, str) and item.tag.startswith(prefix):
            item.tag = item.tag[len(prefix) :]
    out.set("xmlns", namespace)
    return out


def escaped_text(text: str) -> str:
    """Element text as ``serialize`` writes it: ElementTree's escapes (``&``, ``<``, ``>``),
    and a carriage return as a character reference (for writers that skip the tree)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def serialize(root: ET.Element) -> bytes:
    """The document, UTF-8, with an XML declaration."""
    # ElementTree writes a carriage return in text as is, and every XML parser reads it back
    # as a newline; a character reference keeps it. Tags never contain one.
    body = ET.tostring(root, encoding="unicode").replace("\r", "&#13;")
    return DECLARATION + body.encode("utf-8")
