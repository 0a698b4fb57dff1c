from datetime import UTC, datetime, timedelta

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from statuspage.markdown import render_markdown
from statuspage.models import PageSettings

register = template.Library()

FORMATS = {
    "datetime": "%b %-d, %Y %H:%M %Z",
    "time": "%H:%M %Z",
    "date": "%b %-d, %Y",
    "day": "%b %-d",
}


@register.filter
def markdown(text: str) -> str:
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3


@register.simple_tag
def page_time(value: datetime | None, style: str = "datetime"):
    """A <time> in UTC for machines, shown in the page's zone until JS shows the visitor's."""
    if value is None:
        return ""
    local = value.astimezone(PageSettings.load().zone)
    return format_html(
        '<time datetime="{}" data-format="{}">{}</time>',
        value.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        style,
        local.strftime(FORMATS[style]),
    )


@register.filter
def duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m"]
    return " ".join(p for p in parts if p and (p != "0m" or not (days or hours)))


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return "No data"
    return f"{value:.2f}%" if value < 100 else "100%"
