from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "notify"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # alerts sits below notify: it sends a signal once its alerts commit, notify listens.
        from alerts.models import alerts_created

        from . import jobs

        alerts_created.connect(jobs.fan_out, dispatch_uid="notify.fan_out")
