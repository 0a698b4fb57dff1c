"""The page: `GET /pages`, `GET|PATCH|PUT /pages/{page_id}`."""

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from incidents import statuspage_json
from statuspage.api_v1 import schemas
from statuspage.api_v1.base import (
    ERROR_RESPONSES,
    OneLine,
    page_or_404,
    replica_read,
    require_perm,
)
from statuspage.models import PageSettings
from statuspage.services import page_settings_update

router = Router()


class PageFields(Schema):
    name: OneLine | None = Field(None, max_length=100)
    url: OneLine | None = Field(None, max_length=200)
    time_zone: str | None = None
    allow_email_subscribers: bool | None = None
    hidden_from_search_engines: bool | None = None


class PageBody(Schema):
    page: PageFields


def page_object(page: PageSettings) -> dict[str, Any]:
    """Statuspage's manage-API Page, with the fields Beacon has."""
    zone = page.zone
    return {
        "id": page.public_id,
        "created_at": None,
        "updated_at": statuspage_json.timestamp(page.updated_at, zone),
        "name": page.name,
        "page_description": None,
        "headline": None,
        "branding": "basic",
        "subdomain": None,
        "domain": None,
        "url": page.url or None,
        "support_url": page.support_url or None,
        "hidden_from_search": page.hidden_from_search_engines,
        "allow_page_subscribers": page.allow_email_subscribers,
        "allow_incident_subscribers": False,
        "allow_email_subscribers": page.allow_email_subscribers,
        "allow_sms_subscribers": False,
        "allow_rss_atom_feeds": True,
        "allow_webhook_subscribers": True,
        "notifications_from_email": None,
        "notifications_email_footer": None,
        "activity_score": 0,
        "twitter_username": None,
        "viewers_must_be_team_members": False,
        "ip_restrictions": None,
        "city": None,
        "state": None,
        "country": None,
        "time_zone": page.time_zone,
        "css_body_background_color": None,
        "css_font_color": None,
        "css_light_font_color": None,
        "css_greens": None,
        "css_yellows": None,
        "css_oranges": None,
        "css_blues": page.brand_color,
        "css_reds": None,
        "css_border_color": None,
        "css_graph_color": None,
        "css_link_color": page.brand_color,
        "css_no_data": None,
        "favicon_logo": None,
        "transactional_logo": None,
        "hero_cover": None,
        "email_logo": None,
        "twitter_logo": None,
    }


@router.get(
    "",
    response={200: list[schemas.Page], **ERROR_RESPONSES},
    summary="List the pages (Beacon serves one)",
)
@replica_read
def list_pages(request: HttpRequest):
    require_perm(request, "statuspage.view_pagesettings")
    return [page_object(PageSettings.load())]


@router.get("/{page_id}", response={200: schemas.Page, **ERROR_RESPONSES}, summary="Get the page")
@replica_read
def get_page(request: HttpRequest, page_id: str):
    require_perm(request, "statuspage.view_pagesettings")
    return page_object(page_or_404(page_id))


@router.api_operation(
    ["PATCH", "PUT"],
    "/{page_id}",
    response={200: schemas.Page, **ERROR_RESPONSES},
    summary="Update the page",
)
def update_page(request: HttpRequest, page_id: str, payload: PageBody):
    require_perm(request, "statuspage.change_pagesettings")
    page = PageSettings.objects.get(pk=page_or_404(page_id).pk)
    changes = payload.page.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise ValidationError("Send at least one page field.")
    page_settings_update(page=page, changes=changes)
    return page_object(PageSettings.load())
