"""Addresses of the staff sign-in steps, shared by the admin site and its views."""

from urllib.parse import urlencode

from django.contrib.auth import REDIRECT_FIELD_NAME


def with_next(url: str, next_url: str) -> str:
    """`url` with the page to go on to once this step is passed (?next=…)."""
    return f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}"
