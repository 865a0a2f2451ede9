import pytest

from chassis import ids, money


def test_ids_are_prefixed_unique_and_time_sortable() -> None:
    issued = [ids.new_id("pi") for _ in range(2000)]
    assert len(set(issued)) == len(issued)
    assert issued == sorted(issued)
    assert all(i.startswith("pi_") and len(i) == 29 for i in issued)
    assert ids.parse_id(issued[0], "pi") == issued[0]
    assert abs(ids.timestamp_ms(issued[0]) - ids.timestamp_ms(issued[-1])) < 5000


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "pi_",
        "re_01JD3Z6V6Y3ZQ8W5N8K7C4R2T9",
        "pi_01jd3z6v6y3zq8w5n8k7c4r2t9",
        "pi_01JD3Z6V6Y3ZQ8W5N8K7C4R2TU",
        "pi_1234",
    ],
)
def test_malformed_or_foreign_ids_are_refused(bad: str) -> None:
    with pytest.raises(ids.InvalidId):
        ids.parse_id(bad, "pi")


def test_unknown_prefix_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        ids.new_id("zz")


@pytest.mark.parametrize(("currency", "digits"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("BHD", 3), ("KWD", 3)])
def test_exponents_follow_iso_4217(currency: str, digits: int) -> None:
    assert money.exponent(currency) == digits


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (2500, "USD", "25.00 USD"),
        (500, "JPY", "500 JPY"),
        (1250, "BHD", "1.250 BHD"),
        (-5, "USD", "-0.05 USD"),
    ],
)
def test_formatting_respects_the_exponent(amount: int, currency: str, text: str) -> None:
    assert money.format_amount(amount, currency) == text


def test_parse_major_refuses_extra_precision() -> None:
    assert money.parse_major("12.34", "USD") == 1234
    assert money.parse_major("1.250", "BHD") == 1250
    assert money.parse_major("500", "JPY") == 500
    with pytest.raises(money.MoneyError):
        money.parse_major("12.345", "USD")
    with pytest.raises(money.MoneyError):
        money.parse_major("1.5", "JPY")
    with pytest.raises(money.MoneyError):
        money.parse_major("NaN", "USD")


@pytest.mark.parametrize("bad", [True, 1.0, 2500.0, "2500", None, 0, -1, 2**63])
def test_amounts_refuse_floats_bools_strings_and_overflow(bad: object) -> None:
    with pytest.raises(money.MoneyError):
        money.validate_amount(bad)


@pytest.mark.parametrize("bad", ["usdx", "XXX", "", 840, "US"])
def test_currencies_must_be_known_codes(bad: object) -> None:
    with pytest.raises(money.MoneyError):
        money.validate_currency(bad)
    assert money.validate_currency("usd") == "USD"


def test_money_arithmetic_is_per_currency() -> None:
    assert (money.Money(100, "USD") + money.Money(50, "USD")).amount == 150
    with pytest.raises(money.MoneyError):
        money.Money(100, "USD") + money.Money(50, "EUR")
    with pytest.raises(money.MoneyError):
        money.Money(1.5, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "bps", "fixed", "expected"),
    [
        (2500, 290, 30, 103),
        (2000, 290, 30, 88),
        (1, 290, 30, 1),
        (10_000, 0, 0, 0),
        (17, 290, 0, 0),
        (18, 290, 0, 1),
    ],
)
def test_fee_rounds_half_up_and_never_exceeds_the_amount(
    amount: int, bps: int, fixed: int, expected: int
) -> None:
    assert money.fee(amount, bps, fixed) == expected
