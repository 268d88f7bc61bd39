from django.apps import AppConfig


class StateCopyConfig(AppConfig):
    """Reading the state's copy: the state-records API and export, and the state_views command."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "statecopy"
    verbose_name = "State copy"
