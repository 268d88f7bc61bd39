from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """django.contrib.admin with StateSync's default site (statesync/admin_safety.py)."""

    default_site = "statesync.admin_safety.SafeAdminSite"
