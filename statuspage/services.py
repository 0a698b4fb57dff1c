"""Writes to the page's own settings (name, links, look), from the admin and API v1."""

from collections.abc import Mapping
from typing import Any

from components.publishing import public_write
from statuspage.models import PageSettings


def page_settings_update(*, page: PageSettings, changes: Mapping[str, Any]) -> PageSettings:
    """Change the page's settings, checked as the admin checks them (the time zone, the URL).

    `page` is the instance to save: a form's, with its uploaded logo, or one the API read.
    """
    for field, value in changes.items():
        setattr(page, field, value)
    page.full_clean()
    with public_write():
        page.save()
    return page
