from django.apps import AppConfig


class LiveConfig(AppConfig):
    """The live sockets: steps, verification runs and Process Alerts pushed to open admin pages."""

    name = "live"
    verbose_name = "Live updates"

    def ready(self) -> None:
        from live import signals  # noqa: F401  (connects the sockets' re-check signals)
