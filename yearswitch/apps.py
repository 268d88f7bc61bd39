from django.apps import AppConfig


class YearSwitchConfig(AppConfig):
    """The school-year switch: the end-of-year rule and the start-of-year reminder."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "yearswitch"
    verbose_name = "School year switch"
