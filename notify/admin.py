from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from alerts.models import AlertName
from core.admin import NotFoundNotRedirected
from core.errors import REFUSALS

from . import actions, rights, signing
from .models import Delivery, EmailSubscription, Webhook


def own_staff(request) -> bool:
    return request.user.is_active and request.user.is_staff


def manages_hooks(request) -> bool:
    """May the user manage any webhook? Asked once per request: the admin asks it for
    every page, its menu and each model of it."""
    if not hasattr(request, "_manages_hooks"):
        request._manages_hooks = own_staff(request) and rights.may_manage_any(request.user)
    return request._manages_hooks


@admin.register(EmailSubscription)
class MyNotificationsAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    """My notifications: the alert names a user has mailed to them. Theirs alone."""

    list_display = ["name"]
    fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user)

    def get_form(self, request, obj=None, **kwargs):
        base = super().get_form(request, obj, **kwargs)

        class Mine(base):
            def clean(self):
                data = super().clean()
                self.instance.user = request.user
                name = data.get("name")
                if (
                    name
                    and EmailSubscription.objects.filter(user=request.user, name=name)
                    .exclude(pk=self.instance.pk)
                    .exists()
                ):
                    raise ValidationError(f"{name} already reaches you by email.")
                return data

        return Mine

    def has_module_permission(self, request):
        return own_staff(request)

    def has_view_permission(self, request, obj=None):
        return own_staff(request) and (obj is None or obj.user_id == request.user.pk)

    has_add_permission = has_module_permission
    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        max_length=500, assume_scheme="https", help_text=Webhook._meta.get_field("url").help_text
    )
    names = forms.MultipleChoiceField(
        choices=AlertName.choices, widget=forms.CheckboxSelectMultiple, help_text="The alerts posted here."
    )

    class Meta:
        model = Webhook
        fields = ["district", "url", "names", "active"]

    def clean_url(self):
        # Only public addresses (the API's serializer asks the same check, same words).
        try:
            return signing.check_address(self.cleaned_data["url"])
        except REFUSALS as e:
            raise ValidationError(str(e)) from None

    def clean(self):
        data = super().clean()
        if "url" in data and "names" in data:
            try:
                data["names"] = actions.check_webhook(
                    self.user, data.get("district"), data["url"], data["names"]
                )
            except REFUSALS as e:
                raise ValidationError(str(e)) from None
        return data


@admin.register(Webhook)
class WebhookAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    """A district's or the state's webhooks; the secret is shown once, when made."""

    form = WebhookForm
    list_display = ["__str__", "district", "names", "active", "created_at"]
    list_select_related = ["district"]
    list_filter = ["active"]

    def get_queryset(self, request):
        return rights.webhooks(request.user).select_related("district")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user
        field = form.base_fields.get("district")
        if field is not None:
            field.queryset = rights.hook_districts(request.user)
            field.required = not rights.is_state_admin(request.user)
        return form

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            # The only time it is shown: copy it into the receiver's configuration now.
            self.message_user(
                request,
                f"Webhook made. Its signing secret, shown this once: {obj.secret}",
                messages.WARNING,
            )

    def has_module_permission(self, request):
        return manages_hooks(request)

    def has_view_permission(self, request, obj=None):
        if not self.has_module_permission(request):
            return False
        return obj is None or rights.webhooks(request.user).filter(pk=obj.pk).exists()

    has_add_permission = has_module_permission
    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission


@admin.register(Delivery)
class DeliveryAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    """Every attempt to POST an event, for the webhooks the user manages; read only."""

    list_display = ["at", "webhook", "event", "attempt", "status_code", "error"]
    list_select_related = ["webhook__district"]
    list_filter = ["event", "status_code"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(webhook__in=rights.webhooks(request.user))
            .select_related("webhook__district")
        )

    def has_module_permission(self, request):
        return manages_hooks(request)

    def has_view_permission(self, request, obj=None):
        if not self.has_module_permission(request):
            return False
        return obj is None or rights.webhooks(request.user).filter(pk=obj.webhook_id).exists()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
