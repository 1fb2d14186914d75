"""What to ask a geopy provider, and how to read its answer: precision and civic address.
Pure functions over ``Address`` records and geopy ``Location.raw`` dicts, no I/O; the rules
are in docs/architecture.md ("Geocoder answers")."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from gateway.bandwidth.models import Address
from gateway.geocoding.results import Precision, distance_meters

# --- the query ---------------------------------------------------------------------------------


def street_line(address: Address) -> str:
    parts = (
        address.house_number,
        address.house_suffix,
        address.prefix_directional,
        address.street_name,
        address.street_suffix,
        address.post_directional,
    )
    return " ".join(p.strip() for p in parts if p and p.strip())


def structured_query(address: Address) -> dict[str, str]:
    fields = {
        "street": street_line(address),
        "city": address.city or "",
        "state": address.state_code or "",
        "postalcode": address.zip or "",
        "country": address.country or "",
    }
    return {k: v.strip() for k, v in fields.items() if v and v.strip()}


def one_line(address: Address) -> str:
    state_zip = " ".join(p for p in (address.state_code, address.zip) if p)
    parts = (street_line(address), address.city or "", state_zip, address.country or "")
    return ", ".join(p.strip() for p in parts if p and p.strip())


def forward_query(geocoder: Any, address: Address) -> Mapping[str, str] | str:
    params = getattr(geocoder, "structured_query_params", None) or ()
    if "street" in params:
        return {k: v for k, v in structured_query(address).items() if k in params}
    return one_line(address)


def forward_options(geocoder: Any) -> dict[str, Any]:
    """Extra keyword arguments for ``geocode``: address details where the provider offers them."""
    try:
        parameters = inspect.signature(geocoder.geocode).parameters
    except (TypeError, ValueError):
        return {}
    return {"addressdetails": True} if "addressdetails" in parameters else {}


# --- forward precision -------------------------------------------------------------------------

_NOMINATIM_KEYS = ("addresstype", "place_rank", "osm_type", "class", "category")
_STREET_TYPES = {"house", "building"}
_GENERIC_KEYS = {
    "type",
    "types",
    "addresstype",
    "locationtype",
    "resulttype",
    "placetype",
    "layer",
    "entitytype",
    "accuracytype",
    "matchtype",
    "precision",
}
_STREET_TOKENS = {
    "rooftop",
    "streetaddress",
    "premise",
    "subpremise",
    "house",
    "building",
    "housenumber",
    "pointaddress",
    "address",
    "addressrange",
    "rangeinterpolated",
    "rangeinterpolation",
}
_POSTAL_TOKENS = {"postcode", "postalcode", "postal", "postalcodepoint", "zip", "zipcode"}


def _token(value: str) -> str:
    return re.sub(r"[\s_\-]", "", value).lower()


#: What an answer may say of itself: a geocode is never a device's own fix (``gps``).
_GEOCODE_PRECISIONS = frozenset({Precision.STREET, Precision.POSTAL, Precision.LOCALITY})


def precision_of(raw: Any) -> Precision:
    if not isinstance(raw, Mapping):
        return Precision.LOCALITY
    declared = raw.get("precision")
    if isinstance(declared, str) and declared.lower() in _GEOCODE_PRECISIONS:
        return Precision(declared.lower())
    if any(k in raw for k in _NOMINATIM_KEYS):
        return _nominatim_precision(raw)
    return _generic_precision(raw)


def _nominatim_precision(raw: Mapping[str, Any]) -> Precision:
    kind = str(raw.get("type") or "").lower()
    addresstype = str(raw.get("addresstype") or "").lower()
    category = str(raw.get("class") or raw.get("category") or "").lower()
    if addresstype in _STREET_TYPES or kind in _STREET_TYPES or category == "building":
        return Precision.STREET
    details = raw.get("address")
    try:
        rank = int(raw.get("place_rank", 30))
    except (TypeError, ValueError):
        rank = 0
    if isinstance(details, Mapping) and details.get("house_number") and rank >= 28:
        return Precision.STREET
    if "postcode" in (kind, addresstype):
        return Precision.POSTAL
    return Precision.LOCALITY


def _match_tokens(raw: Mapping[str, Any], depth: int = 0) -> set[str]:
    tokens: set[str] = set()
    for key, value in raw.items():
        if isinstance(value, Mapping):
            if depth < 1:
                tokens |= _match_tokens(value, depth + 1)
            continue
        if _token(str(key)) not in _GENERIC_KEYS:
            continue
        if isinstance(value, str):
            tokens.add(_token(value))
        elif isinstance(value, list | tuple):
            tokens.update(_token(v) for v in value if isinstance(v, str))
    return tokens


def _generic_precision(raw: Mapping[str, Any]) -> Precision:
    tokens = _match_tokens(raw)
    if tokens & _STREET_TOKENS:
        return Precision.STREET
    if tokens & _POSTAL_TOKENS:
        return Precision.POSTAL
    return Precision.LOCALITY


# --- reverse: the civic address ----------------------------------------------------------------

_HOUSE_KEYS = ("house_number", "housenumber", "houseNumber", "street_number")
_STREET_KEYS = ("road", "street", "streetName", "street_name", "pedestrian", "footway")
_CITY_KEYS = ("city", "town", "village", "hamlet", "municipality", "locality", "localadmin")
_STATE_CODE_KEYS = ("ISO3166-2-lvl4", "state_code", "stateCode", "region_a", "region_code")
_STATE_KEYS = ("state", "region", "province")
_ZIP_KEYS = ("postcode", "postalcode", "postalCode", "postal_code", "zip")
_COUNTRY_KEYS = ("country_code", "countryCode", "country_a", "country")

_US_ZIP = re.compile(r"^(\d{5})(?:[-\s]?(\d{4}))?$")

STATE_CODES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
    "puerto rico": "PR", "guam": "GU", "united states virgin islands": "VI",
    "u.s. virgin islands": "VI", "american samoa": "AS", "northern mariana islands": "MP",
    "alberta": "AB", "british columbia": "BC", "manitoba": "MB", "new brunswick": "NB",
    "newfoundland and labrador": "NL", "nova scotia": "NS", "northwest territories": "NT",
    "nunavut": "NU", "ontario": "ON", "prince edward island": "PE", "quebec": "QC",
    "québec": "QC", "saskatchewan": "SK", "yukon": "YT",
}  # fmt: skip

_COUNTRY_CODES = {
    "us": "US", "usa": "US", "united states": "US", "united states of america": "US",
    "ca": "CA", "can": "CA", "canada": "CA",
}  # fmt: skip


def _first(details: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = details.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return None


def _state_code(value: str | None) -> str | None:
    if not value:
        return None
    if "-" in value and len(value) <= 6:  # ISO 3166-2, "US-DC"
        value = value.rsplit("-", 1)[1]
    if len(value) == 2 and value.isalpha():
        return value.upper()
    return STATE_CODES.get(value.strip().lower())


def _country_code(value: str | None) -> str | None:
    if not value:
        return None
    code = _COUNTRY_CODES.get(value.strip().lower())
    if code:
        return code
    return value.upper() if len(value) == 2 and value.isalpha() else None


def _from_details(details: Mapping[str, Any]) -> Address:
    postcode = _first(details, _ZIP_KEYS)
    zip_code, plus_four = postcode, None
    if postcode and (m := _US_ZIP.match(postcode)):
        zip_code, plus_four = m.group(1), m.group(2)
    elif postcode:
        zip_code = postcode.upper()
    city = _first(details, _CITY_KEYS)
    return Address(
        house_number=_first(details, _HOUSE_KEYS),
        street_name=_first(details, _STREET_KEYS),
        city=city.upper() if city else None,
        state_code=_state_code(_first(details, _STATE_CODE_KEYS) or _first(details, _STATE_KEYS)),
        zip=zip_code,
        plus_four=plus_four,
        country=_country_code(_first(details, _COUNTRY_KEYS)),
    )


def _from_google(components: list[Any]) -> Address:
    by_type: dict[str, Mapping[str, Any]] = {}
    for component in components:
        if isinstance(component, Mapping):
            for kind in component.get("types") or ():
                by_type.setdefault(str(kind), component)

    def get(kind: str, name: str = "long_name") -> str | None:
        value = by_type.get(kind, {}).get(name)
        return str(value) if value else None

    city = get("locality") or get("sublocality") or get("postal_town")
    return Address(
        house_number=get("street_number"),
        street_name=get("route"),
        city=city.upper() if city else None,
        state_code=_state_code(get("administrative_area_level_1", "short_name")),
        zip=get("postal_code"),
        plus_four=get("postal_code_suffix"),
        country=_country_code(get("country", "short_name")),
    )


def civic_address(raw: Any) -> Address | None:
    """The civic address in a reverse answer, best effort; ``None`` when it has none we can read."""
    if not isinstance(raw, Mapping):
        return None
    if isinstance(raw.get("address_components"), list):
        address = _from_google(raw["address_components"])
    elif "zip_code" in raw and raw.get("precision") == Precision.POSTAL:
        address = _from_details({**raw, "postcode": raw["zip_code"], "state_code": raw["state"]})
    else:
        for key in ("address", "properties", "components"):
            if isinstance(raw.get(key), Mapping):
                address = _from_details(raw[key])
                break
        else:
            return None
    return None if address == Address() else address


def reverse_precision(address: Address | None) -> Precision:
    if address is not None and address.house_number and address.street_name:
        return Precision.STREET
    if address is not None and address.zip:
        return Precision.POSTAL
    return Precision.LOCALITY


# --- does a forward answer belong to the address? -----------------------------------------------

#: How far a forward answer may lie from the centre of its address's ZIP: farther than any
#: street of a ZIP in the lower 48, so an answer beyond it is some other place's.
MAX_ZIP_DISTANCE_METERS = 150_000.0
#: Where a ZIP may reach farther than that from its centre (Alaska's span hundreds of km):
#: no distance is judged there, only the answer's own state and country.
_VAST_ZIPS = ("995", "996", "997", "998", "999")
#: US territories some providers name as countries of their own.
_US_TERRITORIES = frozenset({"US", "PR", "GU", "VI", "AS", "MP", "UM"})


def _same_country(one: str, other: str) -> bool:
    return one == other or {one, other} <= _US_TERRITORIES


def elsewhere(
    address: Address,
    raw: Any,
    latitude: float,
    longitude: float,
    zip_centre: tuple[float, float] | None,
) -> str | None:
    """Why a forward answer is not the address's place, or ``None`` when nothing says so.

    It is elsewhere when its own address details name another country or state than the
    address, or when it lies more than ``MAX_ZIP_DISTANCE_METERS`` from ``zip_centre`` (the
    centre of the address's ZIP, when known; not in Alaska, whose ZIPs reach farther).
    """
    found = civic_address(raw)
    if found is not None:
        wanted = _country_code(address.country)
        if wanted and found.country and not _same_country(wanted, found.country):
            return f"the answer is in {found.country}, the address in {wanted}"
        state = address.state_code.strip().upper() if address.state_code else None
        # A territory named as a country of its own has its own subdivisions for states.
        territory = state is not None and state == found.country
        if state and found.state_code and found.state_code != state and not territory:
            return f"the answer is in {found.state_code}, the address in {state}"
    if zip_centre is not None and not (address.zip or "").startswith(_VAST_ZIPS):
        meters = distance_meters(latitude, longitude, *zip_centre)
        if meters > MAX_ZIP_DISTANCE_METERS:
            return f"the answer is {meters / 1000:,.0f} km from the centre of the address's ZIP"
    return None
