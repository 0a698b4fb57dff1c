from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

from statuspage.lib.signals import public_output_changed


def _invalidate_public_pages(sender, **kwargs):
    from statuspage.models import PageSettings
    from statuspage.public import snapshots

    if sender is PageSettings:
        # Now for this transaction, and again once other processes can see the change.
        PageSettings.forget_cached()
        transaction.on_commit(PageSettings.forget_cached)
    snapshots.publish_change_on_commit()


def _publish_announced_change(sender, **kwargs):
    # Domain code announces changes that no model save tells (statuspage/lib/signals.py).
    from statuspage.public import snapshots

    snapshots.publish_change()


def _invalidate_after_deploy(sender, **kwargs):
    # Every deploy migrates: pages cached by the previous release must not outlive it.
    from statuspage.public import snapshots

    snapshots.publish_change()


class StatuspageConfig(AppConfig):
    name = "statuspage"
    verbose_name = "Status page"

    def ready(self):
        from statuspage.lib import request_log

        # Before the first request: no log line of this process may hold a secret URL.
        request_log.install()

        from statuspage import mail_dkim

        # A DKIM key that cannot sign stops every process here, not an email later.
        mail_dkim.check_configuration()

        # Cache invalidation is infrastructure, not domain flow: every write path to what
        # the public sees (services, admin, shell) must make the cached pages stale.
        from components.models import Component, ComponentGroup
        from incidents.models import AffectedComponent, Incident, IncidentUpdate
        from statuspage.models import PageSettings

        models = (PageSettings, ComponentGroup, Component, Incident, IncidentUpdate)
        for model in (*models, AffectedComponent):
            post_save.connect(_invalidate_public_pages, sender=model)
            post_delete.connect(_invalidate_public_pages, sender=model)
        m2m_changed.connect(_invalidate_public_pages, sender=Incident.components.through)
        post_migrate.connect(_invalidate_after_deploy, sender=self)
        public_output_changed.connect(_publish_announced_change, dispatch_uid="publish-change")

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
