from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        # Imported here, as Django wants, because they import models.
        from components.signals import status_changed
        from incidents.automatic import staff_tell_about_render_failure
        from incidents.notify.events import on_component_status_changed
        from statuspage.lib.markdown import render_failed

        # The renderer sits below incidents (notify/email.py uses it), so it only signals.
        render_failed.connect(
            staff_tell_about_render_failure, dispatch_uid="staff_tell_about_render_failure"
        )
        # Components sit below incidents: a change subscribers should hear of is signalled.
        status_changed.connect(on_component_status_changed, dispatch_uid="component_status")
