from django.apps import AppConfig


class LoadsConfig(AppConfig):
    """Loading district records from files (import_records) and creating districts (add_district)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "loads"
    verbose_name = "Loads"
