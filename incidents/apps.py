from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        from components.status import moved_automatically
        from incidents.automatic import (
            auto_incident_on_automatic_move,
            staff_tell_about_render_failure,
        )
        from statuspage.markdown import render_failed

        # The renderer sits below incidents (notify/email.py uses it), so it only signals.
        render_failed.connect(
            staff_tell_about_render_failure, dispatch_uid="staff_tell_about_render_failure"
        )
        # Components sit below incidents: the status arbiter signals an automatic move, and
        # the automatic incident follows it.
        moved_automatically.connect(
            auto_incident_on_automatic_move, dispatch_uid="auto_incident_on_automatic_move"
        )
