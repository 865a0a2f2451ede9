"""Prefixed, time-sortable ids: `pi_01JD3…`.

The body is a ULID (48-bit milliseconds + 80 random bits, Crockford base32, 26 characters).
Lexical order follows creation time to the millisecond, so cursor pagination can order by id.
"""

from __future__ import annotations

import os
import re
import threading
import time

# Every id kind the platform issues; an unknown prefix is a programming error.
PREFIXES = frozenset(
    {
        "pi",
        "re",
        "dp",
        "tok",
        "mch",
        "key",
        "we",
        "wd",
        "evt",
        "po",
        "stl",
        "rcn",
        "txn",
        "prf",
        "pdp",
        "pevt",
        "batch",
    }
)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_ID_PATTERN = re.compile(r"^([a-z]+)_([0-9A-HJKMNP-TV-Z]{26})$")
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


class InvalidId(ValueError):
    """The string is not an id of the expected kind."""


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id with `prefix`, monotonic within this process even within one millisecond."""
    global _last_ms, _last_random
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            # Same millisecond (or clock step back): keep order by incrementing the random part.
            now_ms = _last_ms
            _last_random = (_last_random + 1) & ((1 << 80) - 1)
        else:
            _last_random = int.from_bytes(os.urandom(10), "big")
        _last_ms = now_ms
        value = (now_ms << 80) | _last_random
    return f"{prefix}_{_encode(value, _BODY_LENGTH)}"


def parse_id(value: str, prefix: str) -> str:
    """Return `value` if it is a well-formed id with `prefix`, else raise InvalidId."""
    match = _ID_PATTERN.match(value or "")
    if not match or match.group(1) != prefix:
        raise InvalidId(f"expected an id starting with {prefix}_")
    return value


def timestamp_ms(value: str) -> int:
    """Milliseconds since the epoch at which the id was issued."""
    match = _ID_PATTERN.match(value or "")
    if not match:
        raise InvalidId("not a Clearhouse id")
    number = 0
    for char in match.group(2):
        number = number * 32 + _ALPHABET.index(char)
    return number >> 80
