"""IETF location formats: PIDF-LO (RFC 4119, 5139, 5491) and HELD (RFC 5985, 6155).

SIP softphones, PBXs and enterprise location servers exchange location in these formats,
not in the gateway's JSON; speaking them lets the gateway plug into such deployments as they
are. This package is format code only, with no I/O: ``document`` reads and writes PIDF-LO,
``civic`` maps RFC 5139 civic addresses to and from the carrier's address fields,
``geodetic`` reads and writes the RFC 5491 Point and Circle, ``held`` reads HELD location
requests and writes HELD answers. Every reader parses with defusedxml under a size limit and
raises nothing but ``PidfError``.
"""

from __future__ import annotations

from gateway.pidf.errors import DocumentError, PidfError, XmlError

__all__ = ["DocumentError", "PidfError", "XmlError"]
