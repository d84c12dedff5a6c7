"""Payload codec: exact round-trips and clear errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure.errors import SerializationError
from perdure.model import codec


@dataclass
class Line:
    sku: str
    qty: int


@dataclass(frozen=True)
class Order:
    id: str
    placed_at: datetime
    lines: list[Line] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["$datetime", "$date", "$dict", "$dataclass", "$object", "value", "$x"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_every_json_value_round_trips_exactly(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value


@given(st.dictionaries(keys, json_values, max_size=4))
def test_dicts_whose_keys_look_like_tags_round_trip(value: dict[str, Any]) -> None:
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        {"$datetime": "2024-01-01T00:00:00"},
        {"$dataclass": "x:Y", "value": {}},
        {"$object": "x:Y", "value": 1},
        {"$dict": {"a": 1}},
        [{"$date": "2024-01-01"}],
    ],
)
def test_user_dicts_shaped_like_tags_are_not_mistaken_for_them(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value


@given(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])) | st.datetimes()
)
def test_datetimes_round_trip_with_their_timezone(value: datetime) -> None:
    back = codec.decode(codec.encode(value))
    assert back == value and back.tzinfo == value.tzinfo


def test_dates_round_trip_as_dates() -> None:
    assert codec.decode(codec.encode(date(2024, 2, 29))) == date(2024, 2, 29)


def test_nested_dataclasses_round_trip() -> None:
    order = Order("o1", datetime(2024, 1, 1, tzinfo=UTC), [Line("a", 2)], {"$dict": {"k": 1}})
    back = codec.decode(codec.encode({"order": order, "when": order.placed_at}))
    assert back == {"order": order, "when": order.placed_at}
    assert isinstance(back["order"].lines[0], Line)


def test_tuples_become_lists() -> None:
    assert codec.decode(codec.encode((1, (2, 3)))) == [1, [2, 3]]


def test_objects_with_to_json_and_from_json_round_trip() -> None:
    assert codec.decode(codec.encode(Money(5))) == Money(5)


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return self.cents

    def to_json(self) -> int:
        return self.cents

    @classmethod
    def from_json(cls, value: int) -> Money:
        return cls(value)


def test_none_is_encoded_as_null_and_decoded_from_none() -> None:
    assert codec.encode(None) == "null"
    assert codec.decode(None) is None


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({1, 2}, "set"),
        (object(), "object"),
        (math.nan, "Out of range"),
        (math.inf, "Out of range"),
        ({"k": frozenset()}, "frozenset"),
        ({(1, 2): "tuple key"}, "tuple"),
    ],
)
def test_unencodable_values_raise_serialization_error_naming_the_payload(
    value: Any, needle: str
) -> None:
    with pytest.raises(SerializationError) as info:
        codec.encode(value, "input of call_activity('pay')")
    message = str(info.value)
    assert message.startswith("input of call_activity('pay') is not JSON-serializable")
    assert needle in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_oversized_payloads_raise_serialization_error_with_the_size() -> None:
    with pytest.raises(SerializationError, match="the limit is 8,388,608"):
        codec.encode("x" * codec.MAX_PAYLOAD_BYTES, "output")


def test_a_payload_just_under_the_limit_is_accepted() -> None:
    text = codec.encode("x" * (codec.MAX_PAYLOAD_BYTES - 2))
    assert len(text.encode()) == codec.MAX_PAYLOAD_BYTES


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    with pytest.raises(SerializationError):
        codec.encode("é" * (codec.MAX_PAYLOAD_BYTES // 2))


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)


@given(scalars)
def test_scalars_encode_exactly_as_json_does(value: Any) -> None:
    # ints, strings and None skip the JSON encoder; the text must not change for that
    assert codec.encode(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@given(
    st.text(alphabet=st.sampled_from(list('"\\\n\t\x00\u2028a70- é')))
    | st.from_regex(r'\A"[a$ \\é"\t]*"\Z')
    | st.from_regex(r"\A-?[0-9]{0,5}\Z")
    | st.sampled_from(["null", "true", "false", "nul", "True", '"', "", "١٢", "²"])
)
def test_any_text_decodes_as_json_does_or_fails_as_it_does(text: str) -> None:
    # the decoder's shortcuts for integers, constants and plain strings accept exactly
    # what json accepts, with the same value
    try:
        expected: Any = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            codec.decode(text)
    else:
        got = codec.decode(text)
        assert got == expected and type(got) is type(expected)


def test_huge_integers_still_fail_as_serialization_errors() -> None:
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        codec.encode(10**5000)
    assert codec.decode(codec.encode(2**70)) == 2**70


def test_an_escaped_string_near_the_limit_is_measured_after_escaping() -> None:
    # each newline takes two bytes once escaped: the short-cut for strings keeps the check
    text = "\n" * (codec.MAX_PAYLOAD_BYTES // 2 + 1)
    with pytest.raises(SerializationError, match="bytes encoded"):
        codec.encode(text)
