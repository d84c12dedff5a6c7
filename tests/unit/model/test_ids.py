"""Instance-ID rules, one case per rule."""

from __future__ import annotations

import pytest

from perdure.errors import ValidationError
from perdure.model.ids import new_instance_id, validate_instance_id


def test_generated_ids_are_32_hex_characters_and_valid() -> None:
    generated = new_instance_id()
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert validate_instance_id(generated) == generated


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
