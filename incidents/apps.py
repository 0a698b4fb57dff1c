from django.apps import AppConfig

from components.signals import status_changed
from statuspage.lib.markdown import render_failed


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        # Imported here, as Django wants: these modules import models. The tasks module is
        # imported in every process because incidents/enqueue.py names its tasks: the name then
        # finds the task itself (its options, and eager mode where it is on).
        from components.reports.surge import surge_ended, surge_started
        from components.status import moved_automatically
        from incidents import tasks  # noqa: F401
        from incidents.automatic import (
            auto_incident_on_automatic_move,
            staff_tell_about_render_failure,
        )
        from incidents.notify.events import on_component_status_changed
        from incidents.report_surges import (
            staff_tell_about_surges,
            staff_tell_surges_ended,
            surge_drafts_discard,
        )

        # The renderer sits below incidents (notify/channels/email.py uses it): it only signals.
        render_failed.connect(
            staff_tell_about_render_failure, dispatch_uid="staff_tell_about_render_failure"
        )
        # Components sit below incidents: the status arbiter signals an automatic move, and
        # the automatic incident follows it.
        moved_automatically.connect(
            auto_incident_on_automatic_move, dispatch_uid="auto_incident_on_automatic_move"
        )
        # Surge detection of visitor reports signals: staff hear, and a draft is prepared.
        surge_started.connect(staff_tell_about_surges, dispatch_uid="staff_tell_about_surges")
        surge_ended.connect(surge_drafts_discard, dispatch_uid="surge_drafts_discard")
        surge_ended.connect(staff_tell_surges_ended, dispatch_uid="staff_tell_surges_ended")
        # Components sit below incidents: a change subscribers should hear of is signalled.
        status_changed.connect(on_component_status_changed, dispatch_uid="component_status")
