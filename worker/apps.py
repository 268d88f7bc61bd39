from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """The RQ worker that runs steps and verification runs, and RQ's dashboard."""

    name = "worker"
    label = "worker"
    verbose_name = "Worker"
