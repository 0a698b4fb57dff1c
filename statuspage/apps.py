from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save


class StatuspageConfig(AppConfig):
    name = "statuspage"
    verbose_name = "Status page"

    def ready(self):
        # Cache invalidation is infrastructure, not domain flow: every write path to what
        # the public sees (services, admin, shell) must make the cached pages stale.
        from components.models import Component, ComponentGroup
        from incidents.models import AffectedComponent, Incident, IncidentUpdate
        from statuspage import public_cache
        from statuspage.models import PageSettings

        def invalidate(sender, **kwargs):
            if sender is PageSettings:
                transaction.on_commit(PageSettings.forget_cached)
            public_cache.invalidate_on_commit()

        for model in (
            PageSettings,
            ComponentGroup,
            Component,
            Incident,
            IncidentUpdate,
            AffectedComponent,
        ):
            post_save.connect(
                invalidate, sender=model, dispatch_uid=f"public-cache-save-{model.__name__}"
            )
            post_delete.connect(
                invalidate, sender=model, dispatch_uid=f"public-cache-del-{model.__name__}"
            )
        m2m_changed.connect(
            invalidate, sender=Incident.components.through, dispatch_uid="public-cache-m2m"
        )
