from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

from statuspage import mail_dkim
from statuspage.lib import request_log
from statuspage.lib.signals import public_output_changed, rows_changed


class StatuspageConfig(AppConfig):
    name = "statuspage"
    verbose_name = "Status page"

    def ready(self):
        # Before the first request: no log line of this process may hold a secret URL.
        request_log.install()

        # A DKIM key that cannot sign stops every process here, not an email later.
        mail_dkim.check_configuration()

        # What makes the public outputs stale (statuspage/public/changes.py). Imported here,
        # as Django wants: these modules import models. The tasks module is imported in every
        # process because the snapshot store names its rebuild task: the name then finds the
        # task itself (its options, and eager mode where it is on).
        from components.models import Component, ComponentGroup
        from incidents.models import (
            AffectedComponent,
            Incident,
            IncidentUpdate,
            IncidentUpdateTranslation,
            MaintenanceSeries,
        )
        from statuspage import tasks  # noqa: F401
        from statuspage.models import PageSettings
        from statuspage.public import changes

        models = (PageSettings, ComponentGroup, Component, Incident, IncidentUpdate)
        for model in (*models, AffectedComponent, IncidentUpdateTranslation, MaintenanceSeries):
            post_save.connect(changes.on_public_row_changed, sender=model)
            post_delete.connect(changes.on_public_row_changed, sender=model)
        m2m_changed.connect(changes.on_public_row_changed, sender=Incident.components.through)
        m2m_changed.connect(
            changes.on_public_row_changed, sender=MaintenanceSeries.components.through
        )
        post_migrate.connect(changes.on_migrated, sender=self)
        public_output_changed.connect(changes.on_announced_change, dispatch_uid="publish-change")

        # What makes the management API's kept JSON stale (statuspage/api_v1/changes.py): its
        # reads also show subscribers, and whether a postmortem's subscribers were told.
        from components.models import DailyUptime
        from incidents.notify.models import NotificationEvent, Subscriber
        from statuspage.api_v1 import changes as api_changes

        api_models = (*models, AffectedComponent, DailyUptime, NotificationEvent, Subscriber)
        for api_model in api_models:
            post_save.connect(api_changes.on_api_row_changed, sender=api_model)
            post_delete.connect(api_changes.on_api_row_changed, sender=api_model)
        for through in (Incident.components.through, Subscriber.components.through):
            m2m_changed.connect(api_changes.on_members_changed, sender=through)
        rows_changed.connect(api_changes.on_rows_changed, dispatch_uid="api-rows-changed")
        public_output_changed.connect(api_changes.on_announced_change, dispatch_uid="api-change")

        # What makes a key's cached record stale at once (statuspage/api_v1/keys.py); a
        # revocation forgets it itself, the rest within AUTH_CACHE_SECONDS.
        from django.contrib.auth import get_user_model

        from statuspage.api_v1 import keys
        from statuspage.models import ApiKey

        owners = get_user_model()
        post_save.connect(keys.on_owner_saved, sender=owners, dispatch_uid="api-key-owner")
        post_save.connect(keys.on_key_changed, sender=ApiKey, dispatch_uid="api-key-saved")
        post_delete.connect(keys.on_key_changed, sender=ApiKey, dispatch_uid="api-key-deleted")

        # The audit trail is fed from the edges: sign-in, the admin's LogEntry, a lock-out.
        from axes.signals import user_locked_out
        from django.contrib.admin.models import LogEntry
        from django.contrib.auth import signals as auth

        from statuspage import access, audit

        auth.user_logged_in.connect(audit.on_signed_in, dispatch_uid="audit-signed-in")
        auth.user_logged_out.connect(audit.on_signed_out, dispatch_uid="audit-signed-out")
        auth.user_login_failed.connect(audit.on_sign_in_failed, dispatch_uid="audit-failed")
        post_save.connect(audit.on_log_entry_saved, sender=LogEntry, dispatch_uid="audit-admin")
        user_locked_out.connect(access.on_locked_out, dispatch_uid="audit-locked-out")
