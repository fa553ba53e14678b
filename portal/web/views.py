"""Portal pages: sign-in / out, home, profile with two-factor, API keys, system status."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal.api_keys import api_key_create, api_key_get, api_key_list, api_key_revoke
from portal.authentication import (
    LoginRefused,
    confirmed_totp_device,
    login_attempt,
    totp_disable,
    totp_pending_device,
    totp_qr_data_uri,
    totp_secret_base32,
    totp_setup_begin,
    totp_setup_confirm,
)
from portal.choices import Role
from portal.errors import DomainError, NotFoundError
from portal.health import health_report
from portal.idempotency import idempotency_claim_form, idempotency_complete, idempotency_release
from portal.web.forms import ApiKeyCreateForm, LoginForm, OtpTokenForm


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request, reverse("portal:home")))
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            login_attempt(
                request=request,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                otp_token=form.cleaned_data["otp_token"],
            )
        except LoginRefused as refused:
            form.add_error(None, refused.message)
            status = 429 if refused.status == 429 else 200  # a form error is a normal page
        else:
            return redirect(_safe_next(request, reverse("portal:home")))
    return render(request, "portal/login.html", {"form": form, "next": _safe_next(request, "")}, status=status)


def admin_login_redirect(request, extra_context=None):
    """The admin signs in through the portal's login page (lock-out, two-factor)."""
    if request.user.is_authenticated:
        return HttpResponseForbidden("The admin site is for operators and admins.")
    target = request.GET.get("next") or reverse("admin:index")
    return redirect(f"{reverse('portal:login')}?{urlencode({'next': target})}")


@require_POST
def logout_view(request):
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("portal:login")


@login_required
def home(request):
    return render(request, "portal/home.html", {"role": request.user.role})


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    user = request.user
    token_form = OtpTokenForm(request.POST or None)
    if request.method == "POST":
        step = request.POST.get("step")
        try:
            if step == "totp-begin":
                totp_setup_begin(user=user)
                return redirect("portal:profile")
            if step in ("totp-confirm", "totp-disable") and token_form.is_valid():
                if step == "totp-confirm":
                    totp_setup_confirm(request=request, user=user, token=token_form.cleaned_data["token"])
                    messages.success(request, "Two-factor authentication is on.")
                else:
                    totp_disable(user=user, token=token_form.cleaned_data["token"])
                    messages.success(request, "Two-factor authentication is off.")
                return redirect("portal:profile")
        except DomainError as error:
            token_form.add_error("token", error.message)
    pending = totp_pending_device(user=user)
    context = {
        "profile_user": user,
        "role": user.role,
        "two_factor_enabled": confirmed_totp_device(user) is not None,
        "pending_device": pending,
        "pending_qr": totp_qr_data_uri(pending) if pending else None,
        "pending_secret": totp_secret_base32(pending) if pending else None,
        "token_form": token_form,
    }
    return render(request, "portal/profile.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    user = request.user
    can_manage = user.has_role_at_least(Role.TRADER)
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST":
        if not can_manage:
            return HttpResponseForbidden("Viewers cannot create API keys.")
        if form.is_valid():
            fields = dict(form.cleaned_data)
            token = fields.pop("form_token")
            claim = idempotency_claim_form(user_id=user.pk, token=token, path=request.path)
            if claim is None:
                messages.info(request, "This form was already sent: the key exists and its secret was shown once.")
                return redirect("portal:api-keys")
            try:
                issued = api_key_create(user=user, actor=user, **fields)
            except DomainError as error:
                idempotency_release(record=claim)
                for field, problems in (error.errors or {}).items():
                    for problem in problems:
                        form.add_error(field if field in form.fields else None, problem)
                if not error.errors:
                    form.add_error(None, error.message)
            else:
                idempotency_complete(record=claim, status=201, body={"api_key": issued.api_key.pk}, headers={})
                # Shown on this response only; never stored in clear, never in the session.
                return render(
                    request,
                    "portal/api_keys.html",
                    {
                        "form": ApiKeyCreateForm(),
                        "keys": api_key_list(user=user),
                        "new_key": issued,
                        "can_manage": can_manage,
                    },
                    status=201,
                )
    return render(
        request, "portal/api_keys.html", {"form": form, "keys": api_key_list(user=user), "can_manage": can_manage}
    )


@login_required
@require_POST
def api_key_revoke_view(request, key_id: int):
    try:
        api_key = api_key_get(user=request.user, key_id=key_id)
    except NotFoundError:
        raise Http404("No such API key.") from None
    if api_key.user_id != request.user.pk or not request.user.has_role_at_least(Role.TRADER):
        return HttpResponseForbidden("You can revoke only your own keys.")
    api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, f"API key {api_key.prefix} revoked.")
    return redirect("portal:api-keys")


@login_required
def system_status(request):
    if not request.user.has_role_at_least(Role.OPERATOR):
        return HttpResponseForbidden("The system page is for operators and admins.")
    return render(request, "portal/system.html", {"report": health_report()})
