"""Who hears about what: subscribing, confirming, choosing components, leaving.

The public form never tells a visitor anything about an address: whatever its state, the
answer is "check your inbox", and the inbox gets the email that fits.
"""

import csv
import io
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce, Now
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from components.models import Component
from incidents import enqueue
from incidents.notify import links
from incidents.notify.models import (
    Audience,
    Channel,
    Subscriber,
    SubscriberState,
    WebhookFormat,
)
from statuspage.lib import network
from statuspage.lib.signals import announce_rows_changed
from statuspage.lib.text import no_control_characters, one_line, without_control_characters

logger = logging.getLogger(__name__)

# The subscriber a link is for (its token is made and checked in links.py)


def _pending(token: str) -> QuerySet[Subscriber]:
    """The unconfirmed subscriber a confirmation link is for, as a queryset (0 or 1 row): an
    email address, or a visitor's generic webhook confirmed by its contact address.

    Empty for a tampered or expired link, a deleted subscriber, a link already used, and a
    link older than the newest one sent: each bump of the nonce kills every earlier link.
    """
    found = links.confirm_token_value(token)
    if found is None:
        return Subscriber.objects.none()
    code, nonce = found
    # A webhook staff added is confirmed by its test delivery; only one we sent a link to
    # (a visitor's) is confirmed by a link.
    sent_a_link = Q(channel=Channel.EMAIL) | Q(confirmation_sent_at__isnull=False)
    return Subscriber.objects.filter(
        sent_a_link,
        public_id=code,
        confirm_nonce=nonce,
        state=SubscriberState.UNCONFIRMED,
    )


def subscriber_by_confirm_token(token: str) -> Subscriber | None:
    return _pending(token).first()


def subscriber_by_manage_token(token: str) -> Subscriber | None:
    code = links.manage_token_code(token)
    if code is None:
        return None
    return Subscriber.objects.filter(public_id=code).first()


# The public form


def normalise_email(address: str) -> str:
    address = (address or "").strip()
    if not address:
        raise ValidationError({"email": gettext("Enter your email address.")})
    try:
        validate_email(address)
        # Django lets a quoted local part hold control characters; the To: header cannot.
        no_control_characters(address)
    except ValidationError as error:
        raise ValidationError({"email": gettext("Enter a valid email address.")}) from error
    local, _, domain = address.rpartition("@")
    # The domain is case-insensitive; most providers treat the local part the same way.
    return f"{local}@{domain}".lower()


def components_chosen(component_ids: Iterable[int] | None) -> list[Component]:
    ids = sorted(set(component_ids or ()))
    found = list(Component.objects.filter(pk__in=ids))
    if len(found) != len(ids):
        raise ValidationError({"components": gettext("Choose components from the list.")})
    return found


def _language(language: str) -> str:
    """A shipped language, or "" (the page's default) for anything else."""
    shipped = {code for code, _name in settings.LANGUAGES}
    return language if language in shipped else ""


def subscription_request(
    *,
    email: str,
    component_ids: Iterable[int] | None = None,
    audience: Audience = Audience.PUBLIC,
    language: str = "",
) -> None:
    """The public form: subscribe, or send the email that fits the address's state.

    `component_ids` empty or None means every component; `language` is the page's they
    subscribed on ("": the default). An active subscriber's choices are not changed by an
    anonymous form: they get a link to change them themselves. The form on /internal/ asks
    with `audience=internal`: the subscriber becomes internal once it confirms; a public form
    never makes an internal subscriber public.
    """
    address = normalise_email(email)
    language = _language(language)
    components = components_chosen(component_ids)
    with transaction.atomic():
        subscriber = (
            Subscriber.objects.select_for_update()
            .filter(channel=Channel.EMAIL, email=address)
            .first()
        )
        if subscriber is None:
            try:
                with transaction.atomic():
                    subscriber = Subscriber.objects.create(
                        channel=Channel.EMAIL,
                        email=address,
                        audience=audience,
                        language=language,
                    )
            except IntegrityError:  # the same address, submitted twice at once
                return
        if subscriber.bounced_at is not None:
            # The address hard-bounced: the answer is the same, and nothing is sent.
            logger.info("subscribe: subscriber %s hard-bounced; nothing sent", subscriber.public_id)
            return
        if subscriber.state == SubscriberState.ACTIVE:
            send_after_commit("already_subscribed", subscriber)
            return
        # Unconfirmed (or disabled after bouncing): this request's choices, a fresh link.
        subscriber.state = SubscriberState.UNCONFIRMED
        subscriber.all_components = not components
        subscriber.confirmation_sent_at = timezone.now()
        subscriber.confirm_nonce += 1  # the link about to be sent is the only one that works
        subscriber.language = language
        fields = ["state", "all_components", "confirmation_sent_at", "confirm_nonce", "language"]
        if audience == Audience.INTERNAL:
            subscriber.audience = audience
            fields.append("audience")
        subscriber.save(update_fields=fields)
        subscriber.components.set(components)
        send_after_commit("confirm", subscriber)


def send_after_commit(which: str, subscriber: Subscriber) -> None:
    def send() -> None:
        enqueue.send_subscription_email(which, subscriber.pk)

    transaction.on_commit(send, robust=True)


def subscription_confirm(*, subscriber: Subscriber) -> Subscriber:
    """Confirm a subscriber (staff, a webhook's test delivery). Confirming twice is harmless.

    Every confirmation link sent so far stops working.
    """
    Subscriber.objects.filter(pk=subscriber.pk).update(
        confirmed_at=Coalesce("confirmed_at", Now()), confirm_nonce=F("confirm_nonce") + 1
    )
    Subscriber.objects.filter(pk=subscriber.pk).exclude(state=SubscriberState.ACTIVE).update(
        state=SubscriberState.ACTIVE,
        quarantined_at=None,
        bounced_at=None,
        failing_since=None,
        last_error="",
    )
    announce_rows_changed(Subscriber, [subscriber.pk])
    subscriber.refresh_from_db()
    return subscriber


def subscription_confirm_by_token(*, token: str) -> Subscriber | None:
    """Double opt-in's second step: the link's one use. None if the link does not work.

    One conditional UPDATE, so of two presses at once only one confirms (and is shown the
    subscriber's manage link); the nonce moves on, so the link never works again.
    """
    with transaction.atomic():
        subscriber = _pending(token).select_for_update().first()
        if subscriber is None:
            return None
        return subscription_confirm(subscriber=subscriber)


def subscription_set_components(
    *, subscriber: Subscriber, component_ids: Iterable[int] | None, language: str | None = None
) -> Subscriber:
    """Empty or None: every component. With `language`, their emails' language too."""
    components = components_chosen(component_ids)
    fields = ["all_components"]
    with transaction.atomic():
        subscriber.all_components = not components
        if language is not None:
            subscriber.language = _language(language)
            fields.append("language")
        subscriber.save(update_fields=fields)
        subscriber.components.set(components)
    return subscriber


def subscriber_set_audience(*, subscriber: Subscriber, audience: str) -> Subscriber:
    """Staff make a subscriber internal (told of internal incidents and components too) or
    public again."""
    if audience not in Audience.values:
        raise ValidationError({"audience": gettext("Choose public or internal.")})
    Subscriber.objects.filter(pk=subscriber.pk).update(audience=audience)
    subscriber.audience = audience
    return subscriber


def subscription_cancel(*, subscriber: Subscriber) -> None:
    """Unsubscribe: the address is forgotten, with what was sent to it."""
    Subscriber.objects.filter(pk=subscriber.pk).delete()


# Staff and the delivery engine


def email_subscriber_create_confirmed(
    *, email: str, components: Iterable[Component] = ()
) -> Subscriber:
    """Staff (or the API) add an address already opted in elsewhere: active, no email sent.

    An address already subscribed is refused rather than changed behind its owner's back.
    """
    address = normalise_email(email)
    components = list(components)
    with transaction.atomic():
        if Subscriber.objects.filter(channel=Channel.EMAIL, email=address).exists():
            raise ValidationError({"email": f"{address} is already subscribed."})
        try:
            with transaction.atomic():
                subscriber = Subscriber.objects.create(
                    channel=Channel.EMAIL,
                    email=address,
                    all_components=not components,
                    state=SubscriberState.ACTIVE,
                    confirmed_at=timezone.now(),
                )
        except IntegrityError as error:  # the same address, added twice at once
            raise ValidationError({"email": f"{address} is already subscribed."}) from error
        subscriber.components.set(components)
    return subscriber


def subscriber_quarantine(*, subscriber: Subscriber, reason: str) -> None:
    """Stop sending to a subscriber that bounces or fails; staff are told about webhooks."""
    changed = (
        Subscriber.objects.filter(pk=subscriber.pk)
        .exclude(state=SubscriberState.QUARANTINED)
        .update(state=SubscriberState.QUARANTINED, quarantined_at=timezone.now())
    )
    if changed:
        announce_rows_changed(Subscriber, [subscriber.pk])
    subscriber.state = SubscriberState.QUARANTINED
    if changed and subscriber.channel == Channel.WEBHOOK:
        _tell_staff_webhook_disabled(subscriber, reason)


def _tell_staff_webhook_disabled(subscriber: Subscriber, reason: str) -> None:
    """To the webhook's contact address, with staff in copy (to staff alone without one)."""
    subject = f"Webhook disabled: {subscriber.endpoint}"
    path = reverse("admin:incidents_subscriber_change", args=[subscriber.pk])
    contact = subscriber.email
    text = (
        f"Beacon stopped sending to the webhook {subscriber.endpoint} after it kept failing.\n"
        f"Last error: {reason}\n"
    )
    if contact:
        text += "Once the endpoint works again, ask the status page's staff (in copy) to "
        text += "re-enable it.\n"
    text += f"Staff re-enable it here: {links.page_base_url()}{path}\n"

    def tell() -> None:
        enqueue.tell_staff_by_email(subject, text, contact)

    transaction.on_commit(tell, robust=True)


def subscriber_suppress_bounced(*, email: str, reason: str) -> int:
    """A hard bounce: the email subscriber with this address (any case) gets nothing more.

    Disabled, with the time and the reason, until staff reactivate it; the public form sends
    it no confirmation either. Returns how many subscribers were suppressed (0 for an address
    nobody subscribed, which is no error: providers report every address they sent to).
    """
    address = without_control_characters(email or "", lines=False).strip()
    if not address or "@" not in address:
        return 0
    reason = one_line(reason or "").strip() or "no reason given"
    now = timezone.now()
    subscribers = list(
        Subscriber.objects.filter(channel=Channel.EMAIL, email__iexact=address, bounced_at=None)
    )
    suppressed = Subscriber.objects.filter(pk__in=[s.pk for s in subscribers]).update(
        state=SubscriberState.QUARANTINED,
        quarantined_at=now,
        bounced_at=now,
        last_error=f"Hard bounce: {reason}"[:500],
    )
    announce_rows_changed(Subscriber, [s.pk for s in subscribers])
    for subscriber in subscribers:
        logger.info("subscriber %s suppressed after a hard bounce", subscriber.public_id)
    return suppressed


def subscriber_reactivate(*, subscriber: Subscriber) -> None:
    Subscriber.objects.filter(pk=subscriber.pk).update(
        state=SubscriberState.ACTIVE,
        confirm_nonce=F("confirm_nonce") + 1,
        quarantined_at=None,
        bounced_at=None,
        failing_since=None,
        last_error="",
        confirmed_at=subscriber.confirmed_at or timezone.now(),
    )
    announce_rows_changed(Subscriber, [subscriber.pk])


def subscription_resend_confirmation(*, subscriber: Subscriber) -> bool:
    """A fresh confirmation link for an email address that has not confirmed yet.

    Returns False (and sends nothing) for anyone else: an active or quarantined subscriber,
    or a webhook, which is confirmed when staff add it.
    """
    changed = Subscriber.objects.filter(
        pk=subscriber.pk, channel=Channel.EMAIL, state=SubscriberState.UNCONFIRMED
    ).update(confirmation_sent_at=timezone.now(), confirm_nonce=F("confirm_nonce") + 1)
    if changed:
        send_after_commit("confirm", subscriber)
    return bool(changed)


def webhook_endpoint_validate(endpoint: str) -> None:
    """Raise ValidationError unless `endpoint` is an http(s) URL Beacon may post to.

    The send-time guard (channels/webhook.py's _post) stays the rule; this says so when the
    webhook is saved, rather than failing every delivery later: a host that is, or now
    resolves to, a private, loopback, link-local or metadata address is refused, private
    ones unless WEBHOOKS_ALLOW_PRIVATE is set. A name that does not resolve now is accepted:
    DNS may be briefly down, and deliveries retry it.
    """
    try:
        URLValidator(schemes=["http", "https"])(endpoint)
    except ValidationError:
        raise ValidationError("Enter an http:// or https:// URL.") from None
    allow_private = settings.BEACON_WEBHOOKS_ALLOW_PRIVATE
    problem = network.url_problem(endpoint, allow_private=allow_private)
    if problem is None:
        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            network.resolve_blocking(parts.hostname or "", port, allow_private=allow_private)
        except network.TargetRefused as refused:
            if not isinstance(refused.__cause__, socket.gaierror):
                problem = f"Refused: {refused}."
    if problem:
        if "is a private, loopback or reserved address" in problem:
            problem += " Set WEBHOOKS_ALLOW_PRIVATE=true to post to internal endpoints."
        raise ValidationError(problem)


def webhook_subscriber_create(
    *,
    endpoint: str,
    email: str = "",
    secret: str = "",
    webhook_format: str = WebhookFormat.STATUSPAGE,
    component_ids: Iterable[int] | None = None,
    confirmed: bool = False,
) -> Subscriber:
    endpoint = (endpoint or "").strip()
    errors = {}
    try:
        webhook_endpoint_validate(endpoint)
    except ValidationError as error:
        errors["endpoint"] = error.messages[0]
    if webhook_format not in WebhookFormat.values:
        errors["webhook_format"] = f"Unknown format {webhook_format!r}."
    if errors:
        raise ValidationError(errors)
    address = normalise_email(email) if email else ""
    components = components_chosen(component_ids)
    now = timezone.now()
    with transaction.atomic():
        subscriber = Subscriber.objects.create(
            channel=Channel.WEBHOOK,
            endpoint=endpoint,
            email=address,
            secret=secret,
            webhook_format=webhook_format,
            all_components=not components,
            state=SubscriberState.ACTIVE if confirmed else SubscriberState.UNCONFIRMED,
            confirmed_at=now if confirmed else None,
        )
        subscriber.components.set(components)
    return subscriber


def webhook_subscriber_update(
    *,
    subscriber: Subscriber,
    endpoint: str | None = None,
    email: str | None = None,
    secret: str | None = None,
    webhook_format: str | None = None,
) -> Subscriber:
    """Change a webhook's own settings; None leaves one as it is. Checked as on creation."""
    columns: dict[str, str] = {}
    errors = {}
    if endpoint is not None:
        columns["endpoint"] = endpoint = endpoint.strip()
        try:
            webhook_endpoint_validate(endpoint)
        except ValidationError as error:
            errors["endpoint"] = error.messages[0]
    if webhook_format is not None:
        columns["webhook_format"] = webhook_format
        if webhook_format not in WebhookFormat.values:
            errors["webhook_format"] = f"Unknown format {webhook_format!r}."
    if errors:
        raise ValidationError(errors)
    if email is not None:
        columns["email"] = normalise_email(email) if email else ""
    if secret is not None:
        columns["secret"] = secret
    if columns:
        Subscriber.objects.filter(pk=subscriber.pk).update(**columns)
        announce_rows_changed(Subscriber, [subscriber.pk])
        subscriber.refresh_from_db(fields=list(columns))
    return subscriber


@dataclass
class ImportResult:
    created: int = 0
    already_subscribed: int = 0
    errors: list[str] = field(default_factory=list)


def subscribers_import_csv(*, data: bytes) -> ImportResult:
    """Staff import of addresses already confirmed elsewhere (another status page).

    Columns: `email`, and optionally `components` (names or codes separated by `;`, empty
    for all). Every line is checked before anything is written: one bad line, no import.
    """
    result = ImportResult()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append("The file is not UTF-8 text.")
        return result
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        result.errors.append("The first line must name the columns, with an `email` column.")
        return result
    by_key = {}
    for component in Component.objects.all():
        by_key[component.name.lower()] = component
        by_key[component.public_id.lower()] = component
    rows: list[tuple[str, list[Component]]] = []
    seen: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            address = normalise_email(row.get("email", ""))
        except ValidationError:
            result.errors.append(f"Line {line}: {row.get('email', '')!r} is not an email address.")
            continue
        names = [n.strip() for n in row.get("components", "").split(";") if n.strip()]
        unknown = [n for n in names if n.lower() not in by_key]
        if unknown:
            result.errors.append(f"Line {line}: no component named {unknown[0]!r}.")
            continue
        if address in seen:
            continue
        seen.add(address)
        rows.append((address, [by_key[n.lower()] for n in names]))
    if result.errors:
        return result
    existing = set(
        Subscriber.objects.filter(
            channel=Channel.EMAIL, email__in=[address for address, _ in rows]
        ).values_list("email", flat=True)
    )
    now = timezone.now()
    with transaction.atomic():
        for address, components in rows:
            if address in existing:
                result.already_subscribed += 1
                continue
            subscriber = Subscriber.objects.create(
                channel=Channel.EMAIL,
                email=address,
                all_components=not components,
                state=SubscriberState.ACTIVE,
                confirmed_at=now,
            )
            if components:
                subscriber.components.set(components)
            result.created += 1
    return result
