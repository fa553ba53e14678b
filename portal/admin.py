"""Admin for users, roles and API keys; every edit is audited."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from audit.admin_mixins import AuditedAdminMixin, ReadOnlyAdmin
from audit.services import audit_record
from portal.api_keys import api_key_check_request, api_key_create, api_key_revoke
from portal.choices import JOB_FINISHED, ApiKeyScope, Role
from portal.errors import DomainError
from portal.jobs import job_cancel
from portal.models import ApiKey, Job, User
from portal.users import user_set_role


def _role_action(role: str):
    @admin.action(description=f"Set role: {role}")
    def set_role(modeladmin, request, queryset):
        changed = 0
        for user in queryset:
            try:
                user_set_role(user=user, role=role, actor=request.user)
            except DomainError as error:
                modeladmin.message_user(request, f"{user.username}: {error.message}", messages.ERROR)
            else:
                changed += 1
        modeladmin.message_user(request, f"{changed} user(s) now have the {role} role.", messages.SUCCESS)

    set_role.__name__ = f"set_role_{role}"
    return set_role


@admin.register(User)
class UserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    list_display = ("username", "email", "role", "is_active", "is_staff", "last_login", "date_joined")
    list_filter = ("groups", "is_active", "is_staff")
    actions = [_role_action(role) for role in Role.values]

    @admin.display(description="Role")
    def role(self, user):
        return user.role or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_readonly_fields(self, request, obj=None):
        """Only admins touch privileges; operators change roles through the audited actions."""
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.has_role_at_least(Role.ADMIN):
            readonly += ["is_superuser", "is_staff", "groups", "user_permissions"]
        return readonly

    def user_change_password(self, request, id, form_url=""):
        """Only admins set passwords (an operator could otherwise take a trader's account over);
        every change is audited."""
        if not request.user.has_role_at_least(Role.ADMIN):
            raise PermissionDenied("Only admins set passwords.")
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            audit_record(action="admin.password_change", actor=request.user, target=User.objects.get(pk=id))
        return response

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_staff and not request.user.has_role_at_least(Role.ADMIN):
            return False  # operators cannot edit staff accounts (passwords included)
        return super().has_change_permission(request, obj)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedAdminMixin, DjangoGroupAdmin):
    pass


class ApiKeyAdminForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple)
    allowed_ips = forms.CharField(required=False, help_text="Comma-separated IP addresses or CIDR networks.")

    class Meta:
        model = ApiKey
        fields = ["user", "name", "scopes", "allowed_ips", "expires_at"]

    actor = None  # set by ApiKeyAdmin.get_form to the signed-in user

    def clean_allowed_ips(self):
        return [part.strip() for part in self.cleaned_data["allowed_ips"].split(",") if part.strip()]

    def clean(self):
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            api_key_check_request(
                actor=self.actor,
                user=cleaned["user"],
                scopes=cleaned["scopes"],
                allowed_ips=cleaned["allowed_ips"],
                expires_at=cleaned.get("expires_at"),
            )
        except DomainError as error:
            raise forms.ValidationError(error.message) from error
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Operators issue keys for users (the secret is shown once) and revoke them; keys are
    never edited, so the audit log holds their whole story."""

    form = ApiKeyAdminForm
    list_display = (
        "prefix",
        "name",
        "user",
        "scopes",
        "is_active",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_at",
    )
    list_filter = ("revoked_at", "expires_at", "created_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    actions = ["revoke_selected"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("user", *ApiKey.PUBLIC_FIELDS)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "scopes", "allowed_ips", "expires_at"]
        return list(self.get_readonly_fields(request, obj))

    def has_delete_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        """The form checks who may issue which key, so it needs the signed-in user."""
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def save_model(self, request, obj, form, change):
        if change:
            return
        issued = api_key_create(
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            allowed_ips=form.cleaned_data["allowed_ips"],
            expires_at=form.cleaned_data["expires_at"],
            actor=request.user,
        )
        obj.pk = issued.api_key.pk
        self.message_user(
            request, f"API key created. Copy it now, it will not be shown again: {issued.raw_key}", messages.WARNING
        )

    def log_addition(self, request, obj, message):
        return None

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(api_key=api_key, actor=request.user)
        self.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Every background job: what it was asked, where it stands, why it failed. Operators may
    cancel jobs that have not finished."""

    list_display = ["id", "kind", "owner", "status", "progress", "attempts", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "owner__username", "request_id"]
    list_select_related = ["owner"]
    actions = ["cancel_selected"]

    @admin.action(description="Cancel the selected jobs that have not finished")
    def cancel_selected(self, request, queryset):
        canceled = 0
        for job in queryset.exclude(status__in=JOB_FINISHED):
            job_cancel(user=request.user, job_id=str(job.pk))
            canceled += 1
        self.message_user(request, f"{canceled} job(s) canceled.")
