"""An SLA's terms on plain values: the month a report covers, the target, the credit tiers.

Model-free (the models validate their fields with it; components/sla.py computes reports).
A tier reads "below `below` % uptime, `credit` % of the month's fee back"; tiers are listed
from the highest threshold down, and the lowest threshold the month's uptime falls below wins.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# A month as YYYY-MM, nothing around it: no "2026-1", no spaces, no control characters.
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
FIRST_YEAR = 1970  # the management API's earliest date too
LAST_YEAR = 9998  # the month after the last one must still be a date


def percent_text(value: Decimal) -> str:
    """A stored percentage as staff typed it: 99.9 for 99.9000, 100 for 100.0000."""
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class CreditTier:
    below: Decimal  # uptime strictly below this percentage …
    credit: Decimal  # … earns this percentage of the month's fee

    def as_json(self) -> dict[str, float]:
        return {"below": float(self.below), "credit": float(self.credit)}

    @property
    def below_text(self) -> str:
        return percent_text(self.below)

    @property
    def credit_text(self) -> str:
        return percent_text(self.credit)


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) from "YYYY-MM"; ValueError with a sentence people can act on."""
    found = MONTH.fullmatch(text or "")
    if found is None:
        raise ValueError("Give the month as YYYY-MM, for example 2026-03.")
    year, month = int(found[1]), int(found[2])
    if not 1 <= month <= 12:
        raise ValueError("The month must be between 01 and 12.")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"The year must be between {FIRST_YEAR} and {LAST_YEAR}.")
    return year, month


def _percent(value: object, error: ValidationError) -> Decimal:
    """A finite number from JSON, a form or the database; `error` when it is none."""
    # bool is an int to Python; a JSON true is not a percentage.
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise error
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise error from None
    if not number.is_finite():
        raise error
    return number


def validate_sla_target(value: object) -> None:
    if value is None:
        return
    target = _percent(value, ValidationError(_("The SLA target must be a number.")))
    if not 0 < target <= 100:
        raise ValidationError(_("The SLA target must be above 0 and at most 100 percent."))


def credit_tiers(value: object) -> list[CreditTier]:
    """The tiers of a stored or submitted list, validated: ValidationError says what is wrong.

    `[{"below": 99.9, "credit": 10}, {"below": 99, "credit": 25}]`: thresholds strictly
    decreasing, each above 0 and at most 100; credits from 0 to 100, never less than the tier
    above's.
    """
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise ValidationError(_('Credit tiers are a list such as [{"below": 99.9, "credit": 10}].'))
    tiers: list[CreditTier] = []
    for number, entry in enumerate(value, start=1):
        if not isinstance(entry, dict) or set(entry) != {"below", "credit"}:
            raise ValidationError(
                _('Tier %(number)s must have exactly "below" and "credit".'),
                params={"number": number},
            )
        below = _percent(
            entry["below"],
            ValidationError(
                _("Tier %(number)s: the threshold must be a number."), params={"number": number}
            ),
        )
        credit = _percent(
            entry["credit"],
            ValidationError(
                _("Tier %(number)s: the credit must be a number."), params={"number": number}
            ),
        )
        if not 0 < below <= 100:
            raise ValidationError(
                _("Tier %(number)s: the threshold must be above 0 and at most 100 percent."),
                params={"number": number},
            )
        if not 0 <= credit <= 100:
            raise ValidationError(
                _("Tier %(number)s: the credit must be from 0 to 100 percent."),
                params={"number": number},
            )
        if tiers and below >= tiers[-1].below:
            raise ValidationError(
                _("Tier %(number)s: list the thresholds from the highest down, each lower."),
                params={"number": number},
            )
        if tiers and credit < tiers[-1].credit:
            raise ValidationError(
                _("Tier %(number)s: a lower threshold cannot earn a smaller credit."),
                params={"number": number},
            )
        tiers.append(CreditTier(below=below, credit=credit))
    return tiers


def validate_credit_tiers(value: object) -> None:
    credit_tiers(value)


def credit_for(uptime: Decimal | None, tiers: list[CreditTier]) -> CreditTier | None:
    """The tier the uptime earns: the lowest threshold it is strictly below; exactly at a
    threshold is not below it. No data earns nothing."""
    if uptime is None:
        return None
    earned = [tier for tier in tiers if uptime < tier.below]
    return earned[-1] if earned else None


def breached(uptime: Decimal | None, target: Decimal | None) -> bool:
    return uptime is not None and target is not None and uptime < target
