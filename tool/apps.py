from django.apps import AppConfig


class ToolConfig(AppConfig):
    """Where a resync starts: the Resync State Data tool, its API and its commands."""

    name = "tool"
    label = "tool"
    verbose_name = "Resync State Data tool"
