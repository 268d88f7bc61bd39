from django.apps import AppConfig


class SelectiveConfig(AppConfig):
    """Selective Sync: resync single PersonIdentity or Enrollment records."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "selective"
    verbose_name = "Selective Sync"
