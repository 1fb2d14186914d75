"""The JSON API's report shapes, declared once: their validation and their JSON schema.

Each field's checks are the domain's own (``gateway.dlr``); its schema in the API document
says the same, from the same constants.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from gateway.api.schemas import FIELD_LIMITS, MAX_STRING, check_string
from gateway.bandwidth.models import Address, wire_name
from gateway.dlr.address import CALLER_NAME_PATTERN, validate_caller_name
from gateway.dlr.errors import FieldError
from gateway.dlr.identity import AEUI_PATTERN, aeui_problem
from gateway.dlr.numbers import CALLBACK_NUMBER_PATTERN, CALLBACK_NUMBER_RULE, callback_number
from gateway.dlr.patterns import END, TEXT_PATTERN

#: How far ahead of the gateway's clock a device's ``observedAt`` may be, by default
#: (``GATEWAY_OBSERVED_AT_MAX_FUTURE``).
MAX_CLOCK_SKEW = timedelta(minutes=2)

M = TypeVar("M", bound=BaseModel)

#: RFC 3339 ``date-time`` (section 5.6) with an offset, from the year 1000 and without a leap
#: second: ``datetime.fromisoformat`` alone also takes ISO 8601 forms RFC 3339 does not.
OBSERVED_AT_PATTERN = (
    r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    rf"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]){END}"
)
_RFC3339 = re.compile(OBSERVED_AT_PATTERN)
#: The shape nearly every device sends, a part of ``OBSERVED_AT_PATTERN``: upper-case ``T``
#: and ``Z``, at most 6 digits of fraction. ``datetime.fromisoformat`` reads it as it is.
_PLAIN_RFC3339 = re.compile(
    r"[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
#: ``observedAt`` ahead of the gateway's clock: not the request's shape, the device's clock.
CHECK_CLOCK = "check the device's clock"


def refuse(message: str) -> PydanticCustomError:
    """A validator's refusal: ``message`` is the field error's."""
    return PydanticCustomError("gateway", "{message}", {"message": message})


def checked(problem: Callable[[Any], str | None]) -> BeforeValidator:
    def check(value: Any) -> Any:
        found = problem(value)
        if found is not None:
            raise refuse(found)
        return value

    return BeforeValidator(check)


def _caller_name(value: Any) -> str:
    found = validate_caller_name(value)
    if found is not None:
        raise refuse(found.message)
    assert isinstance(value, str)
    return value.strip()


def telephone_problem(value: Any) -> str | None:
    """Why ``value`` is not a callback number (``callback_number``), or ``None``."""
    text, reason = check_string(value, "", 32)
    if reason or text is None:
        return reason or "required"
    return CALLBACK_NUMBER_RULE if callback_number(text) is None else None


def _telephone(value: Any) -> str:
    found = telephone_problem(value)
    if found is not None:
        raise refuse(found)
    number = callback_number(value)
    assert number is not None
    return number


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp with its offset, or ``None`` for another shape or an
    impossible value."""
    if not _RFC3339.fullmatch(text):
        return None
    head, _, rest = text.upper().partition(".")
    if rest:
        # Python keeps microseconds: a longer fraction is cut to 6 digits, not rounded.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        head = f"{head}.{rest[:digits][:6]}{rest[digits:]}"
    try:
        when = datetime.fromisoformat(head.replace("Z", "+00:00"))
        when.astimezone(UTC)  # a year-1 time east of UTC has no UTC instant
    except (ValueError, OverflowError):
        return None
    return when if when.tzinfo is not None else None


def _plain(value: Any) -> datetime | None:
    """``parse_rfc3339(value)`` for a string of the plain shape (``_PLAIN_RFC3339``), read
    without its rewriting; ``None`` for anything else (``parse_rfc3339`` decides those)."""
    if type(value) is not str or not _PLAIN_RFC3339.fullmatch(value):
        return None
    try:
        when = datetime.fromisoformat(value)
        when.astimezone(UTC)  # a year-1 time east of UTC has no UTC instant
    except (ValueError, OverflowError):
        return None
    return when


def observed_at(value: Any, max_future: timedelta) -> datetime:
    """``observedAt`` read, or a ``PydanticCustomError`` saying why not."""
    when = _plain(value)
    if when is None:
        text, reason = check_string(value, "observedAt", 64)
        when = parse_rfc3339(text) if not reason and text is not None else None
    if when is None:
        raise refuse("expected an RFC 3339 timestamp with an offset")
    if when - datetime.now(UTC) > max_future:
        raise refuse(
            f"is more than {max_future.total_seconds():g} s ahead of the gateway's clock; "
            + CHECK_CLOCK
        )
    return when


def _observed_at(value: Any, info: ValidationInfo) -> datetime:
    context = info.context or {}
    return observed_at(value, context.get("max_future", MAX_CLOCK_SKEW))


def omitted(max_length: int | None = None, description: str | None = None, **bounds: float) -> Any:
    """A field of an answer that leaves out what it lacks (never ``null``)."""
    return Field(None, max_length=max_length, description=description, **bounds)  # type: ignore[call-overload]


def _string(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


AEUI_SCHEMA = _string(
    30,
    minLength=1,
    pattern=AEUI_PATTERN,
    description="The device's AEUI: no control characters, no surrounding spaces.",
)
CALLER_NAME_SCHEMA = _string(
    50,
    minLength=1,
    pattern=CALLER_NAME_PATTERN,
    description="Shown to the PSAP: no control or invisible format characters.",
)
CALLBACK_NUMBER_SCHEMA = _string(
    32,
    pattern=CALLBACK_NUMBER_PATTERN,
    description="Callback number: +1 and an area code of the US, its territories "
    "or Canada (N11, N9X, 37X, 96X and other NANP countries' are refused); "
    "separators allowed, stored as E.164.",
)

Aeui = Annotated[str, checked(aeui_problem), WithJsonSchema(AEUI_SCHEMA)]
CallerName = Annotated[str, BeforeValidator(_caller_name), WithJsonSchema(CALLER_NAME_SCHEMA)]
CallbackNumber = Annotated[str, BeforeValidator(_telephone), WithJsonSchema(CALLBACK_NUMBER_SCHEMA)]
ObservedAt = Annotated[
    datetime,
    BeforeValidator(_observed_at),
    WithJsonSchema(
        _string(
            64,
            format="date-time",
            pattern=OBSERVED_AT_PATTERN,
            description="RFC 3339, with offset, from the year 1000, at most "
            "`GATEWAY_OBSERVED_AT_MAX_FUTURE` (120 s) ahead of the gateway's clock (else "
            "`/problems/clock-skew`).",
        )
    ),
]

_FREE_FORM = (
    "one free-form line: US or Canadian, the city set off by commas for Canada "
    "(`290 Bremner Blvd, Toronto, ON M5V 3L9`)"
)


#: A reference to another component: pydantic resolves ``$ref``s it wrote itself only.
_REF = "x-component"


def address_input_schema(min_length: int) -> dict[str, Any]:
    """The carrier's address object or one free-form line, as a report or a check takes it."""
    line = _string(500, pattern=TEXT_PATTERN)
    if min_length:
        line["minLength"] = min_length
    return {
        "description": f"The carrier's address object, or {_FREE_FORM}.",
        "oneOf": [{"$ref": "#/components/schemas/Address"}, line],
    }


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a ``oneOf``) or ``null``, its references to other components deferred."""
    one_of = [{_REF: s["$ref"].rsplit("/", 1)[1]} if "$ref" in s else s for s in schema["oneOf"]]
    return {**schema, "oneOf": [*one_of, {"type": "null"}]}


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


def _text(value: str) -> str:
    _, reason = check_string(value, "", len(value))
    if reason:
        raise refuse(reason)
    return value


#: What the document says of some of the address's fields.
_ADDRESS_NOTES = {"address_line2": "Suite, floor, room: shown to the PSAP.", "country": "US or CA."}


def _address_field(name: str) -> Any:
    limit = FIELD_LIMITS.get(name, MAX_STRING)
    kind = Annotated[str, Field(max_length=limit), AfterValidator(_text)]
    extra: dict[str, Any] = {"pattern": TEXT_PATTERN}
    info = Field(
        None, alias=wire_name(name), description=_ADDRESS_NOTES.get(name), json_schema_extra=extra
    )
    return (kind | None, info)


#: The carrier's ``Address`` as a request names it: its fields, camelCase, each a string of
#: the carrier's length without control characters.
AddressInput: type[BaseModel] = create_model(
    "Address",
    __config__=_STRICT,
    __doc__="A civic address in the carrier's fields (USPS Publication 28 abbreviations).",
    **{f.name: _address_field(f.name) for f in dataclasses.fields(Address)},
)


def address_object(value: Any, errors: list[FieldError]) -> Address | None:
    """The address object of a request read strictly (unknown fields, wrong types and
    over-long strings refused, named ``address.<field>``), or ``None`` and ``errors``."""
    if not isinstance(value, dict):
        errors.append(FieldError("address", "expected an object"))
        return None
    value, unreadable = unreadable_keys(value, "address")
    errors.extend(unreadable)
    given = {k: v for k, v in value.items() if v is not None or k not in _ADDRESS_KEYS}
    model = validated(AddressInput, given, errors, "address")
    return None if model is None else Address(**dict(model))


_ADDRESS_KEYS = frozenset(wire_name(f.name) for f in dataclasses.fields(Address))


class Geo(BaseModel):
    """The device's own GPS fix."""

    model_config = _STRICT

    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    accuracy_meters: float | None = Field(
        None, alias="accuracyMeters", ge=0, le=1_000_000, allow_inf_nan=False
    )


_NETWORK = {"anyOf": [{_REF: "NetworkObservations"}, {"type": "null"}]}


class LocationReport(BaseModel):
    """Where a device is now. Send `address`, `geo`, `network`, or several (a wiremap match
    for `network` beats `address`, which beats `geo`)."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["address"],
                    "properties": {"address": {"type": ["object", "string"]}},
                },
                {"required": ["geo"], "properties": {"geo": {"type": "object"}}},
                {"required": ["network"], "properties": {"network": {"type": "object"}}},
            ]
        },
    )

    alternate_end_user_id: Aeui = Field(alias="alternateEndUserId")
    caller_name: CallerName = Field(alias="callerName")
    telephone_number: CallbackNumber = Field(alias="telephoneNumber")
    observed_at: ObservedAt = Field(alias="observedAt")
    #: Read apart (``gateway.api.devices``): the carrier's ``Address`` record or a line.
    address: Annotated[Any, WithJsonSchema(_or_null(address_input_schema(1)))] = None
    geo: Geo | None = None
    #: Read apart (``gateway.api.network_models``): where the device is attached.
    network: Annotated[Any, WithJsonSchema(_NETWORK)] = None


#: The report's fields in the order their errors are listed.
REPORT_FIELDS = tuple(f.alias or n for n, f in LocationReport.model_fields.items())

_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "dict_type": "expected an object",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
}
_RANGE = {"float_type", "finite_number", "greater_than_equal", "less_than_equal"}


def _bounds(model: type[BaseModel], alias: str) -> tuple[float, float]:
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            low = next(m.ge for m in info.metadata if hasattr(m, "ge"))
            high = next(m.le for m in info.metadata if hasattr(m, "le"))
            return float(low), float(high)
    raise KeyError(alias)  # pragma: no cover - a model without bounds


def field_errors(exc: ValidationError, bounded: type[BaseModel] = Geo) -> list[FieldError]:
    """``exc`` as the gateway's field errors: ``geo.latitude``, its messages."""
    found: list[FieldError] = []
    for error in exc.errors(include_url=False, include_context=True):
        path = ".".join(str(part) for part in error["loc"]) or "body"
        kind = error["type"]
        if kind == "gateway":
            message = error["msg"]
        elif kind in _RANGE and isinstance(error["input"], int | float):
            is_bool = isinstance(error["input"], bool)
            low, high = _bounds(bounded, str(error["loc"][-1]))
            message = (
                "expected a number" if is_bool else f"expected a number from {low:g} to {high:g}"
            )
        elif kind in _RANGE:
            message = "expected a number"
        elif kind == "string_too_long":
            message = f"at most {error['ctx']['max_length']} characters"
        else:
            message = _MESSAGES.get(kind, error["msg"])
        found.append(FieldError(path, message))
    return found


def validated(
    model: type[M],
    data: Any,
    errors: list[FieldError],
    where: str = "",
    *,
    bounded: type[BaseModel] = Geo,
    context: Any = None,
) -> M | None:
    """``data`` read by ``model``, or ``None`` with its field errors added to ``errors``, named
    ``<where>.<field>`` (the whole object's, ``where``; no ``where``, the field alone)."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        for e in field_errors(exc, bounded):
            field = e.field if not where else where if e.field == "body" else f"{where}.{e.field}"
            errors.append(FieldError(field, e.message))
        return None


def _readable(key: str) -> bool:
    return key.isascii() or not _SURROGATE.search(key)


_SURROGATE = re.compile("[\ud800-\udfff]")


def unreadable_keys(data: Any, where: str = "") -> tuple[Any, list[FieldError]]:
    """``data`` without the keys pydantic cannot read (lone surrogates: never a field's
    name), and an ``unknown field`` error for each, at any depth."""
    if not isinstance(data, dict):
        return data, []
    errors: list[FieldError] = []
    kept: dict[Any, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if not _readable(key):
            errors.append(FieldError(path, "unknown field"))
            continue
        kept[key], found = unreadable_keys(value, path)
        errors.extend(found)
    return (kept, errors) if errors else (data, [])


def in_order(errors: Iterable[FieldError], fields: tuple[str, ...]) -> list[FieldError]:
    """Unknown fields first (by name), then missing ones, then the rest, each group in
    ``fields`` order: one answer reads the same whichever the checks ran first."""

    def rank(error: FieldError) -> tuple[int, int, str]:
        top = error.field.split(".", 1)[0]
        where = fields.index(top) if top in fields else len(fields)
        if error.message == "unknown field" and top not in fields:
            return (0, 0, error.field)
        missing = error.message == "required" and top == error.field
        return (1 if missing else 2, where, "")

    return sorted(errors, key=rank)


class _Plain(GenerateJsonSchema):
    """Schemas as the API document writes them: no generated titles, no ``default: null``."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        value = super().model_schema(schema)
        value.pop("title", None)
        return value

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        value = super().dataclass_schema(schema)
        value.pop("title", None)
        value.pop("additionalProperties", None)
        return value

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        """``{"type": [kind, "null"]}`` for a simple type: one spelling of "or null"."""
        value = super().nullable_schema(schema)
        match value.get("anyOf"):
            case [{"type": str(kind)} as inner, {"type": "null"}] if len(value) == 1:
                return {**inner, "type": [kind, "null"]}
        return value

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        value = super().dict_schema(schema)
        if value.get("additionalProperties") is True:
            del value["additionalProperties"]  # JSON Schema's default
        return value

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        value = super().default_schema(schema)
        if value.get("default", ...) is None:
            value.pop("default")
        return value


def components(*models: type[BaseModel], **names: type[BaseModel]) -> dict[str, Any]:
    """The models' JSON schemas (``names``: under another name), and those of the models
    they hold, by name, for the API document's components."""
    found: dict[str, Any] = {}
    named = [(m.__name__, m) for m in models] + list(names.items())
    for name, model in named:
        schema = model.model_json_schema(
            by_alias=True, schema_generator=_Plain, ref_template="#/components/schemas/{model}"
        )
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    for schema in found.values():
        schema.pop("title", None)  # the component's name
        if "description" in schema:  # a docstring, as one paragraph
            schema["description"] = " ".join(schema["description"].split())
    refs: dict[str, Any] = _refs(found)
    return refs


def _refs(value: Any) -> Any:
    if isinstance(value, dict):
        if _REF in value:
            return {"$ref": f"#/components/schemas/{value[_REF]}"}
        return {k: _refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_refs(v) for v in value]
    return value
