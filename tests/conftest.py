import pytest
from django.core.cache import cache

from statuspage.models import PageSettings


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def page(db) -> PageSettings:
    page = PageSettings.load()
    page.name = "Acme"
    page.url = "https://status.acme.test"
    page.save()
    return PageSettings.load()
