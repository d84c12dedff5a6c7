"""Instance-ID rules, one case per rule."""

from __future__ import annotations

import time
import uuid

import pytest

from perdure.errors import ValidationError
from perdure.model import ids
from perdure.model.ids import new_instance_id, validate_instance_id


def test_generated_ids_are_32_hex_characters_and_valid() -> None:
    generated = new_instance_id()
    assert len(generated) == 32 and generated == generated.lower() and int(generated, 16) >= 0
    assert validate_instance_id(generated) == generated


def test_generated_ids_are_version_7_uuids_carrying_the_time() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(new_instance_id())
    after = time.time_ns() // 1_000_000
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_generated_ids_rise_within_one_millisecond() -> None:
    generated = [new_instance_id() for _ in range(20_000)]  # many share a millisecond
    assert generated == sorted(generated)
    assert len(set(generated)) == len(generated)


def test_generated_ids_keep_rising_when_the_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = new_instance_id()
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_000_000_000_000_000)  # 2001
    later = [new_instance_id() for _ in range(5_000)]  # overflows one millisecond's count
    assert [first, *later] == sorted([first, *later])
    assert all(uuid.UUID(i).version == 7 for i in later)


def test_generated_ids_differ_in_their_random_bits() -> None:
    tails = {new_instance_id()[-15:] for _ in range(1_000)}
    assert len(tails) == 1_000


def test_a_normal_id_is_returned_unchanged() -> None:
    assert validate_instance_id("order-42:retry_1.x") == "order-42:retry_1.x"


def test_an_id_of_exactly_100_characters_is_accepted() -> None:
    assert validate_instance_id("a" * 100) == "a" * 100


def test_an_id_longer_than_100_characters_is_rejected() -> None:
    with pytest.raises(ValidationError, match="101 characters long; the limit is 100"):
        validate_instance_id("a" * 101)


def test_an_empty_id_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        validate_instance_id("")


def test_a_non_string_id_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        validate_instance_id(42)


def test_an_id_starting_with_at_is_rejected_as_reserved_for_entities() -> None:
    with pytest.raises(ValidationError, match="reserved for entities"):
        validate_instance_id("@counter@x")


def test_an_at_sign_later_in_the_id_is_allowed() -> None:
    assert validate_instance_id("user@example.com") == "user@example.com"


@pytest.mark.parametrize("ch", ["/", "\\", "#", "?"])
def test_each_forbidden_character_is_rejected(ch: str) -> None:
    with pytest.raises(ValidationError, match="must not contain"):
        validate_instance_id(f"a{ch}b")


@pytest.mark.parametrize("ch", ["\x00", "\n", "\t", "\x1f", "\x7f", "\x9f"])
def test_control_characters_are_rejected(ch: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        validate_instance_id(f"a{ch}b")


def test_validation_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        validate_instance_id("")
