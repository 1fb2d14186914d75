"""Untrusted XML in, the gateway's XML out.

Parsing is as hardened as for the carrier's answers (``gateway.bandwidth.codec``): defusedxml
only (no DTDs, no entities, no external references) and a size limit checked before parsing.
Writing goes through ElementTree with the usual prefixes and the characters XML cannot carry
refused rather than written.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET  # writing only; parsing goes through defusedxml

from gateway.pidf.errors import XmlError
from gateway.xmlsafe import parse_untrusted

#: Largest document read when the caller gives no limit; a PIDF-LO is a few kilobytes.
MAX_XML_BYTES = 64 * 1024

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# Characters XML 1.0 cannot carry, even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> ET.Element:
    """Parse an untrusted body: size-limited, no DTDs, no entities; ``XmlError`` otherwise.

    Namespace names are read without surrounding whitespace: RFC 4119's own example (and
    devices copying it) declares ``xmlns:cl=" urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"``,
    and a URI cannot contain a space, so nothing else could have been meant.
    """
    root = parse_untrusted(data, max_bytes=max_bytes, error=XmlError)
    for element in root.iter():
        tag = element.tag
        if isinstance(tag, str) and tag.startswith("{"):
            namespace, _, local = tag[1:].partition("}")
            if namespace != namespace.strip():
                element.tag = f"{{{namespace.strip()}}}{local}"
    return root


def text(element: ET.Element | None) -> str:
    """An element's text with whitespace collapsed: XML schema ``token`` semantics."""
    if element is None:
        return ""
    return _SPACES.sub(" ", "".join(element.itertext())).strip()


def checked(value: str) -> str:
    """``value`` when XML can carry it; ``ValueError`` otherwise (never written silently)."""
    if _XML_ILLEGAL.search(value):
        raise ValueError("text contains characters XML cannot carry")
    return value


def with_default_namespace(element: ET.Element, namespace: str) -> ET.Element:
    """A copy of ``element`` written with ``namespace`` as its default namespace.

    The RFCs' documents put ``presence`` and ``locationResponse`` in the default namespace;
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


def serialize(root: ET.Element) -> bytes:
    """The document, UTF-8, with an XML declaration."""
    # ElementTree writes a carriage return in text as is, and every XML parser reads it back
    # as a newline; a character reference keeps it.
    body = ET.tostring(root, encoding="unicode").replace("\r", "&#13;")
    return _DECLARATION + body.encode("utf-8")
