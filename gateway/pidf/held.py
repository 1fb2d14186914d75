"""HELD (RFC 5985) location requests in, location responses and errors out; RFC 6155 device
identities.

A ``locationRequest`` may carry a ``locationType`` (a list of ``any``, ``civic``,
``geodetic``, ``locationURI``, with ``exact``), a ``responseTime`` (milliseconds, or
``emergencyRouting``/``emergencyDispatch``) and an RFC 6155 ``<device>`` naming the device
whose location is asked for. The gateway identifies devices by AEUI and callback number, so
it reads a ``<uri>`` (``sip:``/``sips:``/``pres:``/``im:`` whose user part is the AEUI, or a
``tel:`` number, also written bare as some clients do: ``+12025550143``) and
``<msisdn>``/``<mdn>`` (a number); other identifiers (IP and MAC addresses, ports, IMSI, ...)
name network attachments the gateway knows nothing about and are answered ``badIdentifier``
(RFC 6155 section 3.3).

Errors are ``HeldError`` with the RFC's code: ``xmlError`` for a body that is not XML,
``unsupportedMessage`` for another document element, ``requestError`` for a request that is
not well formed, ``badIdentifier`` for a device identity that cannot be used.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from gateway.pidf.document import LocationObject, presence_element
from gateway.pidf.errors import PidfError, XmlError
from gateway.pidf.namespaces import HELD, HELD_ID, MAX_XML_BYTES, PIDF, XML, parse, q, split
from gateway.xmlsafe import checked, serialize, text
from gateway.xmlsafe import with_default_namespace as _default

#: RFC 5985 section 6.3 and RFC 6155 section 3.3.
ERROR_CODES = frozenset(
    {
        "requestError",
        "xmlError",
        "generalLisError",
        "locationUnknown",
        "unsupportedMessage",
        "timeout",
        "cannotProvideLiType",
        "notLocatable",
        "badIdentifier",
    }
)
LOCATION_TYPES = ("any", "civic", "geodetic", "locationURI")
#: ``responseTime`` words: "as fast as routing a call needs" / "as dispatch needs".
RESPONSE_TIME_WORDS = frozenset({"emergencyRouting", "emergencyDispatch"})

#: RFC 6155 identifiers the gateway cannot look a device up by.
_OTHER_IDENTIFIERS = frozenset(
    {"udpport", "tcpport", "sctpport", "nai", "hostname", "imsi", "imei", "min"} | {"duid"}
)
_USER_SCHEMES = frozenset({"sip", "sips", "pres", "im"})
_TEL_SEPARATORS = re.compile(r"[-.()]")
_GLOBAL_NUMBER = re.compile(r"\+[0-9]{1,15}")
_DIGITS = re.compile(r"[0-9]{1,15}")
_A_DAY_MS = 86_400_000


class HeldError(PidfError):
    """A HELD error (RFC 5985 section 6.3): answered as ``<error code="...">``."""

    def __init__(self, code: str, message: str) -> None:
        assert code in ERROR_CODES, code
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class DeviceId:
    """A device as a HELD request names it: by AEUI or by callback number (E.164)."""

    kind: Literal["aeui", "tel", "ip", "mac"]
    value: str


@dataclass(frozen=True, slots=True)
class LocationRequest:
    types: tuple[str, ...] = ("any",)
    exact: bool = False
    #: Seconds the requester waits; ``None``: no figure (absent, or one of the words).
    response_time: float | None = None
    #: The identities given; none: the requester's own device.
    device: tuple[DeviceId, ...] = ()


def device_from_uri(uri: str) -> DeviceId:
    """A ``tel:`` number (or a bare ``+1...`` one) or the AEUI in a ``sip:``/``sips:``/``pres:``/
    ``im:`` user part."""
    scheme, colon, rest = uri.strip().partition(":")
    scheme = scheme.lower()
    if not colon and uri.strip().startswith("+"):
        # A bare E.164 number, as some clients send it: read as the tel: URI it means.
        scheme, colon, rest = "tel", ":", uri.strip()
    if not colon:
        raise HeldError("badIdentifier", f"not a URI: {uri[:60]!r}")
    if scheme == "tel":
        number = _TEL_SEPARATORS.sub("", rest.split(";", 1)[0])
        if not _GLOBAL_NUMBER.fullmatch(number):
            raise HeldError("badIdentifier", "a tel: URI must hold a global number (+1...)")
        return DeviceId("tel", number)
    if scheme in _USER_SCHEMES:
        user, at, _host = rest.split(";", 1)[0].rpartition("@")
        user = unquote(user.split(":", 1)[0]) if at else ""
        if not user.strip() or user != user.strip():
            raise HeldError("badIdentifier", f"the {scheme}: URI names no device (user@host)")
        return DeviceId("aeui", user)
    raise HeldError(
        "badIdentifier", f"cannot identify a device by a {scheme}: URI; use tel:, sip: or pres:"
    )


def _device(element: ET.Element) -> tuple[DeviceId, ...]:
    found: list[DeviceId] = []
    for child in element:
        namespace, local = split(child.tag)
        if not local:
            continue
        value = text(child)
        if namespace != HELD_ID:
            raise HeldError("badIdentifier", f"unknown device identifier <{local}> ({namespace})")
        if local == "uri":
            found.append(device_from_uri(value))
        elif local in ("msisdn", "mdn"):
            if not _DIGITS.fullmatch(value):
                raise HeldError("badIdentifier", f"<{local}> must be the number's digits")
            found.append(DeviceId("tel", f"+{value}"))
        elif local in ("ip", "mac"):
            # A network identity: located through the wiremap (checked where it is used).
            found.append(DeviceId("ip" if local == "ip" else "mac", value))
        elif local in _OTHER_IDENTIFIERS:
            raise HeldError(
                "badIdentifier",
                f"the gateway cannot locate a device by <{local}>; use <uri> (tel:, sip:, "
                "pres:) or <msisdn>",
            )
        else:
            raise HeldError("badIdentifier", f"unknown device identifier <{local}>")
    if not found:
        raise HeldError("badIdentifier", "the <device> element holds no identifier")
    return tuple(found)


def _location_type(element: ET.Element) -> tuple[tuple[str, ...], bool]:
    tokens = text(element).split()
    unknown = [t for t in tokens if t not in LOCATION_TYPES]
    if unknown:
        raise HeldError("requestError", f"unknown locationType {unknown[0][:40]!r}")
    exact = (element.get("exact") or "false").strip()
    if exact not in ("true", "false", "1", "0"):
        raise HeldError("requestError", "locationType's exact must be true or false")
    return tuple(dict.fromkeys(tokens)) or ("any",), exact in ("true", "1")


def _response_time(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value in RESPONSE_TIME_WORDS:
        return None
    if not value.isascii() or not value.isdigit():
        raise HeldError(
            "requestError",
            "responseTime must be milliseconds or emergencyRouting/emergencyDispatch",
        )
    # Past a day the figure only says "no hurry"; int() refuses huge strings, so cut first.
    milliseconds = int(value) if len(value) <= 12 else _A_DAY_MS
    return min(milliseconds, _A_DAY_MS) / 1000


def read_request(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> LocationRequest:
    """A ``locationRequest``; ``HeldError`` for anything else (never another exception)."""
    try:
        root = parse(data, max_bytes=max_bytes)
    except XmlError as exc:
        raise HeldError("xmlError", str(exc)) from None
    if root.tag != q(HELD, "locationRequest"):
        _, local = split(root.tag)
        raise HeldError("unsupportedMessage", f"<{local}> is not a request this LIS serves")
    types: tuple[str, ...] = ("any",)
    exact = False
    devices: tuple[DeviceId, ...] = ()
    seen: set[str] = set()
    for child in root:
        namespace, local = split(child.tag)
        if not local:
            continue
        if child.tag in seen:
            raise HeldError("requestError", f"<{local}> appears more than once")
        seen.add(str(child.tag))
        if child.tag == q(HELD, "locationType"):
            types, exact = _location_type(child)
        elif child.tag == q(HELD_ID, "device"):
            devices = _device(child)
        elif namespace == HELD:
            raise HeldError("requestError", f"unknown element <{local}>")
        # Anything else is an extension (the schema's ``##other``) this LIS does not know.
    return LocationRequest(types, exact, _response_time(root.get("responseTime")), devices)


def write_response(lo: LocationObject) -> bytes:
    """A ``locationResponse`` carrying the location as one PIDF-LO."""
    response = ET.Element(q(HELD, "locationResponse"))
    response.append(_default(presence_element(lo), PIDF))
    return serialize(_default(response, HELD))


def write_error(code: str, message: str) -> bytes:
    """``<error code="..."><message xml:lang="en">...</message></error>``."""
    if code not in ERROR_CODES:
        raise ValueError(f"not a HELD error code: {code}")
    error = ET.Element(q(HELD, "error"), {"code": code})
    ET.SubElement(error, q(HELD, "message"), {q(XML, "lang"): "en"}).text = checked(message)
    return serialize(_default(error, HELD))
