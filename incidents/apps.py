from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        from incidents.automatic import staff_tell_about_render_failure
        from statuspage.lib.markdown import render_failed

        # The renderer sits below incidents (notify/email.py uses it), so it only signals.
        render_failed.connect(
            staff_tell_about_render_failure, dispatch_uid="staff_tell_about_render_failure"
        )
