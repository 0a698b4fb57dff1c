"""Status badges (shields.io "flat" SVG and endpoint JSON) and the embeddable notice script.

All are public outputs: built once per change, served from the public cache with ETag, 304s
and CORS. Badge labels are fixed (no `?label=`), so a badge has exactly one cache entry.
"""

import html
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.views.decorators.http import require_safe

from components.models import Component, ComponentStatus
from components.selectors import (
    ALL_OPERATIONAL,
    DEGRADED,
    MAJOR_OUTAGE,
    MINOR_OUTAGE,
    PARTIAL_OUTAGE,
    UNDER_MAINTENANCE,
    overall_status,
)
from incidents.models import IncidentStatus
from statuspage.models import PageSettings
from statuspage.public import public_cache
from statuspage.public.public_http import public_output

EMBED_SCRIPT = Path(settings.BASE_DIR) / "static" / "js" / "embed.js"
EMBED_MAX_AGE_SECONDS = 300

LABEL_COLOR = "#555"
# The page's text-safe tones (static/css/beacon.css): white on each is at least 4.5:1.
GREEN, YELLOW, ORANGE, RED, BLUE = "#1a7f37", "#8a6100", "#bc4c00", "#cf222e", "#0969da"

COMPONENT_COLORS = {
    ComponentStatus.OPERATIONAL: GREEN,
    ComponentStatus.DEGRADED_PERFORMANCE: YELLOW,
    ComponentStatus.PARTIAL_OUTAGE: ORANGE,
    ComponentStatus.MAJOR_OUTAGE: RED,
    ComponentStatus.UNDER_MAINTENANCE: BLUE,
}
INDICATOR_COLORS = {
    "none": GREEN,
    "minor": YELLOW,
    "major": ORANGE,
    "critical": RED,
    "maintenance": BLUE,
}

# Advance widths of Verdana's printable ASCII (space to tilde) in font units of a 2048 em,
# the font shields.io measures with; 11px text is units * 11 / 2048 pixels wide.
# fmt: off
_VERDANA_UNITS = (
    720, 824, 942, 1716, 1304, 2222, 1493, 550, 910, 910, 1304, 1716, 745, 909, 745, 1311,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 909, 909, 1716, 1716, 1716, 1116,
    2048, 1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 862, 931, 1425, 1145, 1717, 1532, 1626,
    1237, 1626, 1434, 1402, 1237, 1502, 1401, 2025, 1403, 1239, 1403, 910, 1311, 910, 1716, 1304,
    1304, 1224, 1272, 1063, 1272, 1214, 720, 1272, 1291, 560, 705, 1195, 560, 1983, 1291, 1247,
    1272, 1272, 874, 1063, 807, 1291, 1195, 1669, 1195, 1195, 1060, 1302, 910, 1302, 1716,
)
# fmt: on
VERDANA_11PX = {chr(32 + i): units * 11 / 2048 for i, units in enumerate(_VERDANA_UNITS)}
FALLBACK_WIDTH = 7.5  # Latin letters beyond ASCII, symbols
WIDE_WIDTH = 11.0  # CJK and other full-width characters: one em
HORIZONTAL_PADDING = 5

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def text_width(text: str) -> float:
    """The width of `text` in Verdana 11px, as shields.io lays badges out."""
    width = 0.0
    for char in text:
        if char in VERDANA_11PX:
            width += VERDANA_11PX[char]
        elif unicodedata.combining(char):
            continue
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            width += WIDE_WIDTH
        else:
            width += FALLBACK_WIDTH
    return width


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    color: str

    def as_endpoint_json(self) -> str:
        """The shields.io endpoint format, for https://img.shields.io/endpoint?url=…"""
        return json.dumps(
            {
                "schemaVersion": 1,
                "label": self.label,
                "message": self.message,
                "color": self.color.removeprefix("#"),
            }
        )

    def as_svg(self) -> str:
        label, message = _clean(self.label), _clean(self.message)
        label_width = round(text_width(label)) + 2 * HORIZONTAL_PADDING
        message_width = round(text_width(message)) + 2 * HORIZONTAL_PADDING
        width = label_width + message_width
        title = _xml(f"{label}: {message}")
        # Text is laid out at 10x and scaled down, as shields does, for sub-pixel centring.
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
            f'role="img" aria-label="{title}">',
            f"<title>{title}</title>",
            '<linearGradient id="s" x2="0" y2="100%">'
            '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
            '<stop offset="1" stop-opacity=".1"/></linearGradient>',
            f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>',
            '<g clip-path="url(#r)">',
            f'<rect width="{label_width}" height="20" fill="{LABEL_COLOR}"/>',
            f'<rect x="{label_width}" width="{message_width}" height="20" fill="{self.color}"/>',
            f'<rect width="{width}" height="20" fill="url(#s)"/>',
            "</g>",
            '<g fill="#fff" text-anchor="middle" '
            'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
            'text-rendering="geometricPrecision" font-size="110">',
            *_shadowed_text(label, centre=label_width / 2),
            *_shadowed_text(message, centre=label_width + message_width / 2),
            "</g></svg>",
        ]
        return "".join(parts)


def _shadowed_text(text: str, *, centre: float) -> list[str]:
    x = round(centre * 10)
    length = round(text_width(text) * 10)
    escaped = _xml(text)
    return [
        f'<text aria-hidden="true" x="{x}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{length}">{escaped}</text>',
        f'<text x="{x}" y="140" transform="scale(.1)" fill="#fff" '
        f'textLength="{length}">{escaped}</text>',
    ]


def _clean(text: str) -> str:
    """One line of text with no characters XML cannot carry."""
    return " ".join(_XML_INVALID.sub("", text).split())


def _xml(text: str) -> str:
    return html.escape(text, quote=True)


# A badge's words in the active language, lower case as shields.io badges read (English
# lower-cased is the badge's own wording; other languages keep their own capitals).
OVERALL_WORDS = {
    ALL_OPERATIONAL.description: pgettext_lazy("badge", "all systems operational"),
    UNDER_MAINTENANCE.description: pgettext_lazy("badge", "service under maintenance"),
    DEGRADED.description: pgettext_lazy("badge", "partially degraded service"),
    MINOR_OUTAGE.description: pgettext_lazy("badge", "minor service outage"),
    PARTIAL_OUTAGE.description: pgettext_lazy("badge", "partial system outage"),
    MAJOR_OUTAGE.description: pgettext_lazy("badge", "major system outage"),
}
COMPONENT_WORDS = {
    ComponentStatus.OPERATIONAL: pgettext_lazy("badge", "operational"),
    ComponentStatus.DEGRADED_PERFORMANCE: pgettext_lazy("badge", "degraded performance"),
    ComponentStatus.PARTIAL_OUTAGE: pgettext_lazy("badge", "partial outage"),
    ComponentStatus.MAJOR_OUTAGE: pgettext_lazy("badge", "major outage"),
    ComponentStatus.UNDER_MAINTENANCE: pgettext_lazy("badge", "under maintenance"),
}


def overall_badge() -> Badge:
    status = overall_status(Component.objects.public().values_list("status", flat=True))
    return Badge(
        label=PageSettings.load().name,
        message=str(OVERALL_WORDS[status.description]),
        color=INDICATOR_COLORS[status.indicator],
    )


def component_statuses() -> dict[str, tuple[str, str]]:
    """Each component's name and status by public id; cached, so unknown ids are refused
    without a query. Words are added per request, in the language asked for."""
    return public_cache.cached(
        "badges:component-statuses",
        lambda: {
            public_id: (name, status)
            for public_id, name, status in Component.objects.public().values_list(
                "public_id", "name", "status"
            )
        },
    )


def _status_badge(label: str, status: ComponentStatus) -> Badge:
    return Badge(label=label, message=str(COMPONENT_WORDS[status]), color=COMPONENT_COLORS[status])


def _component_badge(public_id: str) -> Badge:
    found = component_statuses().get(public_id)
    if found is None:
        raise Http404("No component with this id.")
    name, status = found
    return _status_badge(name, ComponentStatus(status))


@require_safe
def overall_svg(request: HttpRequest) -> HttpResponse:
    return public_output(request, lambda base_url: overall_badge().as_svg(), "image/svg+xml")


@require_safe
def overall_json(request: HttpRequest) -> HttpResponse:
    return public_output(
        request,
        lambda base_url: overall_badge().as_endpoint_json(),
        "application/json",
    )


@require_safe
def component_svg(request: HttpRequest, public_id: str) -> HttpResponse:
    badge = _component_badge(public_id)
    return public_output(
        request,
        lambda base_url: badge.as_svg(),
        "image/svg+xml",
    )


@require_safe
def component_json(request: HttpRequest, public_id: str) -> HttpResponse:
    badge = _component_badge(public_id)
    return public_output(
        request,
        lambda base_url: badge.as_endpoint_json(),
        "application/json",
    )


# The one line of static/js/embed.js that holds the notice's words, in English.
EMBED_WORDS_LINE = re.compile(r"^  var WORDS = \{.*\};$", flags=re.MULTILINE)


def embed_words() -> dict[str, str]:
    """The embedded notice's words in the active language; placeholders as in the script."""
    return {
        "investigating": str(IncidentStatus.INVESTIGATING.label),
        "identified": str(IncidentStatus.IDENTIFIED.label),
        "monitoring": str(IncidentStatus.MONITORING.label),
        "in_progress": gettext("Maintenance in progress"),
        "verifying": str(IncidentStatus.VERIFYING.label),
        "view_status_page": gettext("View status page"),
        "view_status_page_of": gettext("View status page of %(name)s"),
        "dismiss": gettext("Dismiss"),
        "service_disruption": gettext("Service disruption"),
        "one_more": gettext("and 1 more"),
        "more": ngettext("and %(count)s more", "and %(count)s more", 2),
    }


def embed_script() -> str:
    """static/js/embed.js with its words in the active language (JSON, so a translation
    cannot end the string or the statement)."""
    line = f"  var WORDS = {json.dumps(embed_words())};"
    return EMBED_WORDS_LINE.sub(lambda match: line, EMBED_SCRIPT.read_text(), count=1)


@require_safe
def embed_js(request: HttpRequest) -> HttpResponse:
    return public_output(
        request,
        lambda base_url: embed_script(),
        "text/javascript; charset=utf-8",
        cache_control=f"public, max-age={EMBED_MAX_AGE_SECONDS}",
    )


urlpatterns = [
    path("badge.svg", overall_svg, name="badge-svg"),
    path("badge.json", overall_json, name="badge-json"),
    path("components/<str:public_id>/badge.svg", component_svg, name="component-badge-svg"),
    path("components/<str:public_id>/badge.json", component_json, name="component-badge-json"),
    path("embed.js", embed_js, name="embed-js"),
]
