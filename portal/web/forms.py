"""Portal forms: sign-in, API key creation, two-factor codes."""

import uuid

from django import forms

from portal.choices import ApiKeyScope


class LoginForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"})
    )
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    otp_token = forms.CharField(
        label="Authentication code",
        required=False,
        max_length=12,
        help_text="Only if two-factor authentication is enabled for your account.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class ApiKeyCreateForm(forms.Form):
    #: One token per rendered form: sending the same form twice (reload, double click)
    #: creates one key (see portal.idempotency).
    form_token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=ApiKeyScope.choices, initial=[ApiKeyScope.READ], widget=forms.CheckboxSelectMultiple
    )
    allowed_ips = forms.CharField(
        label="IP allowlist", required=False, help_text="Comma-separated addresses or CIDR networks; empty allows any."
    )
    expires_at = forms.DateTimeField(
        label="Expires (UTC)",
        required=False,
        help_text="Empty: never.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("form_token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)

    def clean_allowed_ips(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["allowed_ips"].split(",") if part.strip()]


class OtpTokenForm(forms.Form):
    token = forms.CharField(
        label="Authentication code",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
