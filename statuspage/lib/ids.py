import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def new_public_id() -> str:
    """A Statuspage-style id: 12 lowercase base36 characters, stable once given."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def could_be_public_id(value: str) -> bool:
    """Whether `value` may name a row at all: ASCII letters and digits, 12 at most. A made-up
    address is refused before it costs a query or a cache key ("été".isalnum() is true)."""
    return value.isascii() and value.isalnum() and len(value) <= 12
