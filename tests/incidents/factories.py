from datetime import date, timedelta

import factory
from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from components.models import ComponentStatus
from incidents import services
from incidents.models import IncidentKind, IncidentStatus
from incidents.postmortems import ActionItem, Postmortem, TimelineEntry
from tests.components.factories import ComponentFactory


def open_incident(**kwargs):
    """An incident opened the way staff open one, through the service."""
    kwargs.setdefault("name", "Elevated error rates")
    kwargs.setdefault("status", IncidentStatus.INVESTIGATING)
    kwargs.setdefault("body", "We are investigating.")
    return services.incident_create(**kwargs)


def schedule_maintenance(*, starts_in=timedelta(hours=2), lasts=timedelta(hours=1), **kwargs):
    start = timezone.now() + starts_in
    kwargs.setdefault("name", "Database upgrade")
    kwargs.setdefault("body", "We will upgrade the primary database.")
    return services.incident_create(
        kind=IncidentKind.MAINTENANCE,
        status=IncidentStatus.SCHEDULED,
        scheduled_for=start,
        scheduled_until=start + lasts,
        **kwargs,
    )


class IncidentTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "incidents.IncidentTemplate"

    name = factory.Sequence(lambda n: f"Template {n}")
    title = "Degraded performance"


class StaffFactory(factory.django.DjangoModelFactory):
    """A staff user; `groups=["Responders"]` puts them in the roles made by the migrations."""

    class Meta:
        model = "auth.User"
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*Group.objects.filter(name__in=extracted))


def sign_in_staff(client, user):
    """Signs a staff member in fully, as after both steps: the password (force_login) and a
    second factor (an authenticator app of theirs, marked on the session as django-otp does)."""
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return user


class SubscriberFactory(factory.django.DjangoModelFactory):
    """A confirmed email subscriber to every component; `components=[…]` narrows it."""

    class Meta:
        model = "incidents.Subscriber"
        skip_postgeneration_save = True

    channel = "email"
    email = factory.Sequence(lambda n: f"reader{n}@example.test")
    state = "active"
    confirmed_at = factory.LazyFunction(timezone.now)

    class Params:
        unconfirmed = factory.Trait(state="unconfirmed", confirmed_at=None)
        quarantined = factory.Trait(state="quarantined")
        webhook = factory.Trait(
            channel="webhook",
            email="",
            endpoint=factory.Sequence(lambda n: f"https://hooks.example.test/{n}"),
        )

    @factory.post_generation
    def components(self, create, extracted, **kwargs):
        if create and extracted:
            self.all_components = False
            self.save(update_fields=["all_components"])
            self.components.set(extracted)


def resolved_incident(**kwargs):
    """An incident on a public API component (and an internal one beside it), opened,
    identified and resolved through the services."""
    api = ComponentFactory(name="API")
    ComponentFactory(name="Secret backend", internal=True)
    incident = open_incident(
        name="API errors",
        body="We are looking into errors.\nMore detail here.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
        **kwargs,
    )
    services.incident_post_update(
        incident=incident,
        status=IncidentStatus.IDENTIFIED,
        body="A bad deploy.",
        component_statuses={api: ComponentStatus.PARTIAL_OUTAGE},
    )
    services.incident_resolve(incident=incident)
    incident.refresh_from_db()
    return incident


def full_postmortem(incident, **fields) -> Postmortem:
    """A structured postmortem with every section filled; `fields` replace some."""
    values = {
        "summary": "A **deploy** broke the API.",
        "impact": "Requests failed.",
        "impact_minutes": 42,
        "users_affected_percent": 12.5,
        "timeline": [TimelineEntry(at=incident.started_at, text="Alerts fired")],
        "root_cause": "A missing index.",
        "actions": [ActionItem(description="Add the index", owner="Ops", due=date(2030, 1, 2))],
    }
    return Postmortem(**(values | fields))
