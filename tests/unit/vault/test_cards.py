"""Luhn, IIN/brand and country tables with published test card numbers; validation rules."""

from __future__ import annotations

import pytest

from vault_svc.domain.cards import Brand, brand_of, country_of, luhn_valid, validate_card
from vault_svc.domain.errors import CardRejected

# Published test numbers (Stripe, Adyen, network documentation).
PUBLISHED = [
    ("4242424242424242", Brand.VISA),
    ("4000056655665556", Brand.VISA),
    ("4222222222222", Brand.VISA),
    ("5555555555554444", Brand.MASTERCARD),
    ("2223003122003222", Brand.MASTERCARD),
    ("5200828282828210", Brand.MASTERCARD),
    ("2720999999999996", Brand.MASTERCARD),
    ("378282246310005", Brand.AMEX),
    ("371449635398431", Brand.AMEX),
    ("6011111111111117", Brand.DISCOVER),
    ("6011000990139424", Brand.DISCOVER),
    ("6445644564456445", Brand.DISCOVER),
    ("3056930009020004", Brand.DINERS),
    ("36227206271667", Brand.DINERS),
    ("3566002020360505", Brand.JCB),
    ("3530111333300000", Brand.JCB),
    ("6200000000000005", Brand.UNIONPAY),
    ("6205500000000000004", Brand.UNIONPAY),
]


@pytest.mark.parametrize(("number", "brand"), PUBLISHED)
def test_published_numbers_pass_luhn_and_map_to_their_brand(number: str, brand: Brand) -> None:
    assert luhn_valid(number)
    assert brand_of(number) is brand
    card = validate_card(
        number=number, exp_month=1, exp_year=2030, cvc="", cardholder_name="", today_year=2026, today_month=6
    )
    assert (card.brand, card.first6, card.last4) == (brand, number[:6], number[-4:])


@pytest.mark.parametrize(
    ("prefix", "brand"),
    [
        ("2220", Brand.UNSPECIFIED),
        ("2221", Brand.MASTERCARD),
        ("2721", Brand.UNSPECIFIED),
        ("50", Brand.UNSPECIFIED),
        ("56", Brand.UNSPECIFIED),
        ("3527", Brand.UNSPECIFIED),
        ("3590", Brand.UNSPECIFIED),
        ("306", Brand.UNSPECIFIED),
        ("643", Brand.UNSPECIFIED),
        ("35", Brand.UNSPECIFIED),
    ],
)
def test_iin_range_edges(prefix: str, brand: Brand) -> None:
    assert brand_of(prefix + "0" * 12) is brand


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("4242424242424242", "US"),
        ("4000002760003184", "DE"),
        ("4000008260000000", "GB"),
        ("4000003920000003", "JP"),
        ("4000000000000002", "US"),
        ("3566002020360505", "JP"),
    ],
)
def test_simulated_issuing_country(number: str, country: str) -> None:
    assert country_of(number, brand_of(number)) == country


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"number": "4242-4242-4242-424x"}, "card.number"),
        ({"number": "42424242424"}, "card.number"),
        ({"number": "4242424242424241"}, "card.number"),
        ({"number": "37828224631000"}, "card.number"),
        ({"number": "4" * 80}, "card.number"),
        ({"exp_month": 0}, "card.exp_month"),
        ({"exp_year": 26}, "card.exp_year"),
        ({"exp_year": 2026, "exp_month": 5}, "card.exp_year"),
        ({"exp_year": 2099}, "card.exp_year"),
        ({"cvc": "12"}, "card.cvc"),
        ({"cvc": "12345"}, "card.cvc"),
        ({"cardholder_name": "a\nb"}, "card.cardholder_name"),
    ],
)
def test_invalid_fields_are_named_and_never_quoted(fields: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {
        "number": "4242 4242 4242 4242",
        "exp_month": 6,
        "exp_year": 2030,
        "cvc": "123",
        "cardholder_name": "",
        "today_year": 2026,
        "today_month": 6,
        **fields,
    }
    with pytest.raises(CardRejected) as rejected:
        validate_card(**arguments)  # type: ignore[arg-type]
    assert [v.field for v in rejected.value.violations] == [field]
    assert "4242" not in str(rejected.value) and "4242" not in repr(rejected.value.violations)


def test_current_month_is_still_valid_and_repr_hides_the_number() -> None:
    card = validate_card(
        number="4242-4242-4242-4242",
        exp_month=6,
        exp_year=2026,
        cvc="123",
        cardholder_name="  Ada  ",
        today_year=2026,
        today_month=6,
    )
    assert card.number == "4242424242424242" and card.cardholder_name == "Ada" and card.cvc == "123"
    assert "4242424242424242" not in repr(card) and "123" not in str(card)
