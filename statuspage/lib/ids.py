import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def new_public_id() -> str:
    """A Statuspage-style id: 12 lowercase base36 characters, stable once given."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))
