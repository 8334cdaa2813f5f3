"""Parameter constraints are enforced before CloudFormation would enforce them."""

from __future__ import annotations

import pytest
from troposphere import Parameter

from generator.parameters import InvalidSetting, check_value, check_values, required_parameters


def test_numbers_respect_bounds() -> None:
    p = Parameter("Rate", Type="Number", MinValue=1, MaxValue=10)
    assert check_value(p, 5) == "5"
    for bad in ("0", "11", "-3", "ten"):
        with pytest.raises(InvalidSetting) as raised:
            check_value(p, bad)
        assert raised.value.name == "Rate"


def test_pattern_is_a_full_match_and_allowed_values_are_exact() -> None:
    p = Parameter("Stage", Type="String", AllowedPattern="[a-z]+")
    assert check_value(p, "prod") == "prod"
    with pytest.raises(InvalidSetting):
        check_value(p, "prod!")
    flag = Parameter("Flag", Type="String", AllowedValues=["true", "false"])
    assert check_value(flag, True) == "true"
    with pytest.raises(InvalidSetting, match="one of true, false"):
        check_value(flag, "yes")


def test_lists_check_every_item() -> None:
    p = Parameter("Subnets", Type="CommaDelimitedList", AllowedPattern="^subnet-[0-9a-f]+$|^$")
    assert check_value(p, ["subnet-1a", "subnet-2b"]) == "subnet-1a,subnet-2b"
    with pytest.raises(InvalidSetting):
        check_value(p, "subnet-1a,sg-123")


def test_unknown_names_list_the_known_ones_and_required_are_found() -> None:
    params = {"A": Parameter("A", Type="String", Default="x"), "B": Parameter("B", Type="String")}
    with pytest.raises(InvalidSetting, match="known: A, B"):
        check_values(params, {"C": "1"}, where="test")
    assert required_parameters(params.values()) == ["B"]
