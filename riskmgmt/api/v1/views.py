"""Risk endpoints: risk limits per scope and kill switches (operators); VaR runs (traders)."""

from __future__ import annotations

from typing import cast

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from marketdata.selectors import instrument_get
from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.pagination import CreatedCursorPagination
from portal.api.views import ApiView, ApiViewSet
from portal.choices import Role
from portal.models import User
from riskmgmt.api.v1.serializers import (
    KillSwitchEngageSerializer,
    KillSwitchReleaseSerializer,
    KillSwitchSerializer,
    LimitUsageSerializer,
    RiskAssessmentSerializer,
    RiskLimitSerializer,
    RiskLimitWriteSerializer,
    VarRunRequestSerializer,
    VarRunSerializer,
)
from riskmgmt.assessment import risk_assessment, risk_limits_of
from riskmgmt.checks import LIMIT_FIELDS
from riskmgmt.models import KillSwitch, RiskLimit, VarRun
from riskmgmt.services import kill_switch_engage, kill_switch_release, risk_limit_delete, risk_limit_set
from riskmgmt.var_runs import var_run_submit, var_runs_visible_to
from trading.analytics import analytics_account
from trading.api.v1.analytics_serializers import AccountQuerySerializer
from trading.models import TradingAccount


class OperatorOnly:
    read_role = Role.OPERATOR
    write_role = Role.OPERATOR


@extend_schema_view(
    list=extend_schema(
        summary="Risk limits of every scope (operators)",
        responses={200: RiskLimitSerializer(many=True), **PROBLEM_RESPONSES},
    ),
    retrieve=extend_schema(summary="One scope's limits", responses={200: RiskLimitSerializer, **PROBLEM_RESPONSES}),
    destroy=extend_schema(summary="Remove a scope's limits", responses={204: None, **PROBLEM_RESPONSES}),
)
class RiskLimitViewSet(
    OperatorOnly, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ApiViewSet
):
    serializer_class = RiskLimitSerializer
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return RiskLimit.objects.select_related("instrument", "account").order_by("id")

    @extend_schema(
        summary="Set the limits of a scope (venue, symbol, account, or account on a symbol); audited",
        request=RiskLimitWriteSerializer,
        responses={200: RiskLimitSerializer, **PROBLEM_RESPONSES},
    )
    def create(self, request):
        payload = RiskLimitWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        symbol, account_id = data.pop("symbol", None), data.pop("account", None)
        instrument = instrument_get(symbol=symbol) if symbol else None
        account = get_object_or_404(TradingAccount, pk=account_id) if account_id else None
        limit = risk_limit_set(
            actor=request.auth or request.user,
            account=account,
            instrument=instrument,
            values={name: value for name, value in data.items() if name in LIMIT_FIELDS},
        )
        return Response(RiskLimitSerializer(limit).data, status=status.HTTP_200_OK)

    def perform_destroy(self, instance):
        risk_limit_delete(limit=instance, actor=self.request.auth or self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary="Kill switches, engaged and released (operators)",
        responses={200: KillSwitchSerializer(many=True), **PROBLEM_RESPONSES},
    ),
    retrieve=extend_schema(summary="One kill switch", responses={200: KillSwitchSerializer, **PROBLEM_RESPONSES}),
)
class KillSwitchViewSet(OperatorOnly, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = KillSwitchSerializer
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return KillSwitch.objects.order_by("-id")[:500]

    def get_object(self):
        return get_object_or_404(KillSwitch, pk=self.kwargs["pk"])

    @extend_schema(
        summary="Engage a kill switch (venue or one account): cancels every open order in scope, refuses new ones",
        request=KillSwitchEngageSerializer,
        responses={
            201: KillSwitchSerializer,
            **PROBLEM_RESPONSES,
            409: problem("Already engaged for this scope", "KILL_SWITCH_ENGAGED", 409),
        },
    )
    def create(self, request):
        payload = KillSwitchEngageSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        account_id = payload.validated_data.get("account")
        account = get_object_or_404(TradingAccount, pk=account_id) if account_id else None
        switch = kill_switch_engage(
            account=account, reason=payload.validated_data["reason"], actor=request.auth or request.user
        )
        return Response(KillSwitchSerializer(switch).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Release a kill switch",
        request=KillSwitchReleaseSerializer,
        responses={
            200: KillSwitchSerializer,
            **PROBLEM_RESPONSES,
            409: problem("Already released", "KILL_SWITCH_RELEASED", 409),
        },
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        payload = KillSwitchReleaseSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        switch = kill_switch_release(
            switch=self.get_object(), reason=payload.validated_data["reason"], actor=request.auth or request.user
        )
        return Response(KillSwitchSerializer(switch).data)


@extend_schema_view(
    list=extend_schema(
        summary="VaR runs of your accounts, newest first",
        parameters=[OpenApiParameter("account", int)],
        responses={200: VarRunSerializer(many=True), **PROBLEM_RESPONSES},
    ),
    retrieve=extend_schema(summary="One VaR run", responses={200: VarRunSerializer, **PROBLEM_RESPONSES}),
)
class VarRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Value at Risk and Expected Shortfall of an account (historical, parametric, Monte Carlo),
    computed by a job: POST answers 202 with the run and its job; follow the job at
    `jobs/{id}` or on the `jobs` WebSocket stream; the figures appear here when it succeeds."""

    serializer_class = VarRunSerializer
    pagination_class = CreatedCursorPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return VarRun.objects.none()
        runs = var_runs_visible_to(cast(User, self.request.user))
        account = self.request.query_params.get("account")
        if account and account.isdigit():
            runs = runs.filter(account_id=int(account))
        return runs

    @extend_schema(
        summary="Start a VaR run (a job): 202 with the run and its job",
        request=VarRunRequestSerializer,
        responses={202: VarRunSerializer, **PROBLEM_RESPONSES},
    )
    def create(self, request):
        payload = VarRunRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        var_run = var_run_submit(
            user=cast(User, request.user),
            account_id=data["account"],
            method=data["method"],
            confidence=data["confidence"],
            horizon_days=data["horizon_days"],
            lookback_days=data["lookback_days"],
            paths=data.get("paths"),
            seed=data.get("seed"),
        )
        body = VarRunSerializer(var_run, context={"request": request}).data
        location = reverse("v1:job-detail", kwargs={"pk": var_run.job_id})
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


def _account_asked(request) -> TradingAccount:
    """`?account=<id>` among the user's visible accounts, else their default account."""
    query = AccountQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return analytics_account(user=cast(User, request.user), account_id=query.validated_data.get("account"))


class RiskAssessmentView(ApiView):
    @extend_schema(
        operation_id="risk_assessment_retrieve",
        summary="An account's exposures, concentration, leverage, limits, last VaR, risk score and warnings",
        parameters=[AccountQuerySerializer],
        responses={200: RiskAssessmentSerializer, **PROBLEM_RESPONSES},
    )
    def get(self, request):
        return Response(RiskAssessmentSerializer(risk_assessment(_account_asked(request))).data)


class RiskLimitsOfAccountView(ApiView):
    @extend_schema(
        operation_id="risk_limits_of_account",
        summary="The limits that apply to an account (tightest of venue, instrument, account) and how close each is",
        parameters=[AccountQuerySerializer],
        responses={200: LimitUsageSerializer(many=True), **PROBLEM_RESPONSES},
    )
    def get(self, request):
        return Response(LimitUsageSerializer(risk_limits_of(_account_asked(request)), many=True).data)
