"""The portal's risk page: the account's exposures, limits, score and warnings (`riskmgmt.assessment`);
"Run VaR" (a job whose progress bar follows the `jobs` stream), its figures, histogram and
backtest, and the history of runs."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from portal.choices import Role
from portal.errors import DomainError
from portal.web.trading_views import current_account
from riskmgmt.assessment import risk_assessment
from riskmgmt.var import VAR_ERROR_CODES
from riskmgmt.var_runs import var_run_submit, var_runs_visible_to

RUNS_SHOWN = 10
#: Where a VaR input error belongs on the form (others are shown above it).
FIELD_OF_CODE = {
    "BAD_CONFIDENCE": "confidence",
    "BAD_HORIZON": "horizon_days",
    "BAD_LOOKBACK": "lookback_days",
    "LOOKBACK_SHORTER_THAN_HORIZON": "lookback_days",
    "NO_HISTORY": "lookback_days",
    "BAD_PATHS": "paths",
    "BAD_SEED": "seed",
}
assert set(FIELD_OF_CODE) <= set(VAR_ERROR_CODES)


class VarRunForm(forms.Form):
    method = forms.ChoiceField(
        choices=[("historical", "Historical"), ("parametric", "Parametric"), ("monte_carlo", "Monte Carlo")]
    )
    confidence = forms.TypedChoiceField(choices=[("0.95", "95 %"), ("0.99", "99 %")], coerce=float, initial="0.99")
    horizon_days = forms.IntegerField(label="Horizon (days)", initial=1, min_value=1)
    lookback_days = forms.IntegerField(label="Lookback (days)", initial=250, min_value=1)
    paths = forms.IntegerField(label="Paths (Monte Carlo)", required=False, initial=100_000, min_value=1)
    seed = forms.IntegerField(label="Seed (Monte Carlo, optional)", required=False, min_value=0)


@login_required
@require_http_methods(["GET", "POST"])
def risk(request):
    account = current_account(request)
    form = VarRunForm(request.POST or None)
    status = 200
    if request.method == "POST" and account is not None:
        if not request.user.has_role_at_least(Role.TRADER):
            form.add_error(None, "Running VaR needs the trader role.")
        elif form.is_valid():
            data = form.cleaned_data
            try:
                var_run = var_run_submit(
                    user=request.user,
                    account_id=account.pk,
                    method=data["method"],
                    confidence=data["confidence"],
                    horizon_days=data["horizon_days"],
                    lookback_days=data["lookback_days"],
                    paths=data["paths"] if data["method"] == "monte_carlo" else None,
                    seed=data["seed"],
                )
            except DomainError as error:
                field = FIELD_OF_CODE.get(error.code)
                form.add_error(field, f"{error.message} ({error.code})")
            else:
                return redirect(f"{reverse('portal:risk')}?run={var_run.pk}")
        status = 422
    runs = list(var_runs_visible_to(request.user).filter(account=account)[:RUNS_SHOWN]) if account else []
    wanted = request.GET.get("run")
    selected = None
    if account is not None and wanted and wanted.isdigit():
        selected = var_runs_visible_to(request.user).filter(account=account, pk=int(wanted)).first()
    selected = selected or next((run for run in runs if run.var is not None), None)
    context = {
        "account": account,
        "accounts": request.user.trading_accounts.order_by("id"),
        "assessment": risk_assessment(account) if account is not None else None,
        "form": form,
        "runs": runs,
        "selected": selected,
    }
    return render(request, "portal/risk.html", context, status=status)
