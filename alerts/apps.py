from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Process Alerts"

    def ready(self) -> None:
        from alerts import signals  # noqa: F401  (connects the live sockets' re-check signals)
