from django.apps import AppConfig


class ResyncConfig(AppConfig):
    name = "resync"
    verbose_name = "Resync State Data"
