"""What makes the management API's kept JSON stale, connected by the statuspage app.

Like statuspage/public/changes.py for the public outputs: a save or delete of a row the API
shows says so by itself (model signals); writes no save tells (`QuerySet.update()`, bulk
writes) are announced by the domain through the leaf's `rows_changed` signal
(statuspage/lib/signals.py). Either way, inside the writing transaction the objects'
fragments are marked stale (statuspage/api_v1/fragments.py), and after its commit the API's
generation moves on (statuspage/api_v1/generation.py).
"""

from collections.abc import Iterable
from typing import Any

from django.db.models.signals import post_delete

from components.models import Component, ComponentGroup
from incidents.models import AffectedComponent, Incident, IncidentUpdate
from incidents.notify.models import NotificationEvent, Subscriber
from statuspage.api_v1 import fragments, generation


def on_api_row_changed(sender: type, **kwargs: Any) -> None:
    instance = kwargs.get("instance")
    deleted = kwargs.get("signal") is post_delete
    # The page's settings need no mark: what fragments show of them (its id, zone and
    # address) is in every fragment's stamp, compared as each is read.
    if sender in (Component, ComponentGroup) and instance is not None:
        fragments.mark_components([instance.pk], groups=sender is ComponentGroup)
    elif sender is Incident and instance is not None:
        if deleted:
            fragments.forget_incident(instance.pk)
        else:
            fragments.mark_incidents([instance.pk])
    elif sender is IncidentUpdate and instance is not None:
        fragments.mark_incidents([instance.incident_id])
    elif sender is AffectedComponent and instance is not None:
        # While an incident is deleted its updates may already be gone: then so is it.
        incidents = IncidentUpdate.objects.filter(pk=instance.update_id)
        fragments.mark_incidents(incidents.values_list("incident_id", flat=True))
    elif sender is NotificationEvent and instance is not None:
        if instance.incident_id is not None:  # whether a postmortem's subscribers were told
            fragments.mark_incidents([instance.incident_id])
    elif sender is Subscriber and instance is not None:
        if deleted:
            fragments.forget_subscriber(instance.pk)
        else:
            fragments.mark_subscribers([instance.pk])
    generation.bump_on_commit(using=str(kwargs.get("using") or "default"))


def on_members_changed(sender: type, **kwargs: Any) -> None:
    """An incident's components, or a subscriber's, were set, added to or cleared."""
    action = kwargs["action"]
    if action not in ("post_add", "post_remove", "pre_clear", "post_clear"):
        return
    instance, model = kwargs["instance"], kwargs["model"]
    owners: Iterable[int]
    if not kwargs["reverse"]:
        owners = [instance.pk]
    elif action == "pre_clear":  # from the component's side: which rows it is leaving
        owners = model.objects.filter(components=instance).values_list("pk", flat=True)
    else:
        owners = kwargs.get("pk_set") or ()
    owner_model = type(instance) if not kwargs["reverse"] else model
    _mark_rows(owner_model, owners)
    generation.bump_on_commit(using=str(kwargs.get("using") or "default"))


def on_rows_changed(sender: type, *, pks: Iterable[Any], **kwargs: Any) -> None:
    _mark_rows(sender, pks)
    generation.bump_on_commit()


def _mark_rows(model: type, pks: Iterable[Any]) -> None:
    if model in (Component, ComponentGroup):
        fragments.mark_components(pks, groups=model is ComponentGroup)
    elif model is Incident:
        fragments.mark_incidents(pks)
    elif model is Subscriber:
        fragments.mark_subscribers(pks)


def on_announced_change(sender: object, **kwargs: object) -> None:
    generation.bump()
