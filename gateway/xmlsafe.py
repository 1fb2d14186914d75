"""Untrusted XML, parsed one way everywhere: the carrier's answers, PIDF-LO and HELD bodies.

defusedxml only (no DTDs, no entities, no external references), and a size limit checked
before parsing. Each caller names the error it raises, so that its own layer answers it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the element type; parsing goes through defusedxml

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException


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
