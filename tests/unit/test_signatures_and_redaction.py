import pytest

from chassis import signatures
from chassis.telemetry import redact_pans


def test_signature_round_trip_and_tolerance() -> None:
    body = b'{"id": "evt_1"}'
    header = signatures.sign("whsec_test", body, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signatures.verify("whsec_test", header, body, now=1_700_000_100) == 1_700_000_000
    with pytest.raises(signatures.SignatureError) as stale:
        signatures.verify("whsec_test", header, body, now=1_700_000_301)
    assert stale.value.reason == "SIGNATURE_TIMESTAMP_STALE"
    with pytest.raises(signatures.SignatureError) as mismatch:
        signatures.verify("whsec_other", header, body, now=1_700_000_000)
    assert mismatch.value.reason == "SIGNATURE_MISMATCH"
    with pytest.raises(signatures.SignatureError) as tampered:
        signatures.verify("whsec_test", header, body + b" ", now=1_700_000_000)
    assert tampered.value.reason == "SIGNATURE_MISMATCH"


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=notanumber,v1=abc", "t=1700000000"])
def test_malformed_signature_headers_are_refused(header: str | None) -> None:
    with pytest.raises(signatures.SignatureError):
        signatures.verify("s", header, b"x", now=1_700_000_000)


def test_one_matching_signature_among_several_is_enough() -> None:
    body = b"payload"
    good = signatures.compute("new", 1_700_000_000, body)
    header = f"t=1700000000,v1=deadbeef,v1={good}"
    assert signatures.verify("new", header, body, now=1_700_000_000) == 1_700_000_000


@pytest.mark.parametrize(
    "pan",
    ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", "378282246310005", "5555555555554444"],
)
def test_redaction_masks_card_numbers(pan: str) -> None:
    redacted = redact_pans(f"card {pan} declined")
    assert redacted == "card [REDACTED] declined"


def test_redaction_leaves_non_card_numbers() -> None:
    text = "amount 123456789012 order 4242424242424241 ts 1700000000"
    assert redact_pans(text) == text
