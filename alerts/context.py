def unread(request) -> dict:
    """The unread Process Alerts count shown in every admin page's header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from alerts.models import ProcessAlert

    return {"unread_alerts": ProcessAlert.objects.filter(user=user).unread().count()}
