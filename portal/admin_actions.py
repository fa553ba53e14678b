"""Admin actions that ask for input first (a reason, an amount) on an intermediate page."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse

from portal.errors import DomainError


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=255, help_text="Kept in the history and the audit log.")


def action_with_form(
    modeladmin,
    request: HttpRequest,
    queryset,
    *,
    title: str,
    form_class: type[forms.Form],
    apply: Callable[[dict], str],
):
    """Show `form_class` for the selected rows; once it validates, call `apply(cleaned_data)`
    and show its message. A DomainError becomes an error message, not a crash."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        try:
            message = apply(form.cleaned_data)
        except DomainError as error:
            modeladmin.message_user(request, f"{error.code}: {error.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, message, messages.SUCCESS)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "queryset": queryset,
        "opts": modeladmin.model._meta,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/action_form.html", context)
