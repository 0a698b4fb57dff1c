"""The SLA report printed: no admin chrome, black on white, within an A4 page's width."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from components.models import ComponentStatus
from components.services import component_set_status, components_backdate, roll_up_uptime
from tests.components.factories import ComponentFactory

# A4 is 210 mm wide; with the print CSS's 15 mm margins, 180 mm at 96 px per inch.
A4_PRINTABLE_PX = 180 / 25.4 * 96


@pytest.mark.django_db(transaction=True)
def test_the_printed_report_is_only_the_report_black_on_white_on_a4(
    page, live_server, staff_browser_page, csp_violations
):
    component = ComponentFactory(name="API", sla_target=Decimal("99.9"))
    with time_machine.travel(datetime(2026, 7, 3, tzinfo=UTC), tick=False):
        components_backdate(components=[component], since=datetime(2026, 6, 1, tzinfo=UTC))
        component_set_status(
            component=component,
            status=ComponentStatus.MAJOR_OUTAGE,
            at=datetime(2026, 6, 2, tzinfo=UTC),
        )
        component_set_status(
            component=component,
            status=ComponentStatus.OPERATIONAL,
            at=datetime(2026, 6, 2, 1, tzinfo=UTC),
        )
        roll_up_uptime(until=datetime(2026, 7, 1, tzinfo=UTC))
    browser = staff_browser_page
    browser.goto(
        f"{live_server.url}/admin/sla/?subject=component:{component.public_id}&month=2026-06"
    )
    assert browser.locator("#header").is_visible()
    assert browser.locator(".sla-sheet").is_visible()

    browser.emulate_media(media="print")

    for chrome in ("#header", ".breadcrumbs", ".sla-picker", "#nav-sidebar"):
        locator = browser.locator(chrome)
        assert locator.count() == 0 or not locator.first.is_visible(), chrome
    sheet = browser.locator(".sla-sheet")
    expect_text = sheet.inner_text()
    assert "API · 2026-06" in expect_text and "99.8611 %" in expect_text
    colours = browser.evaluate(
        """() => {
            const cell = document.querySelector('.sla-figures td');
            const style = getComputedStyle(cell);
            return [style.color, getComputedStyle(document.body).backgroundColor];
        }"""
    )
    assert colours == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]
    assert sheet.bounding_box()["width"] <= A4_PRINTABLE_PX
    assert browser.pdf(format="A4")[:4] == b"%PDF"
    assert csp_violations == []
