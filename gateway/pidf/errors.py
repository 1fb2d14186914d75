"""The one error tree of the format code: a reader raises nothing else.

A caller turns ``XmlError`` into "the body is not XML we read" and ``DocumentError`` into
field-level errors, each named after the element the sender wrote (``civicAddress.PC``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.dlr.errors import FieldError


class PidfError(Exception):
    """A document the gateway will not read."""


class XmlError(PidfError):
    """Not XML the gateway will read at all: malformed, hostile (DTDs, entities) or too large."""


class DocumentError(PidfError):
    """Well-formed XML that does not say what it must, or says it in a way that cannot be mapped."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors) or (FieldError("body", "cannot be read"),)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))
