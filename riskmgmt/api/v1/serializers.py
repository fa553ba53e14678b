"""Serializers of the risk API: limits and kill switches (operators), VaR runs (traders)."""

from rest_framework import serializers

from portal.api.v1.serializers import JobSerializer
from portal.decimals import AMOUNT_DIGITS, AMOUNT_PLACES
from riskmgmt.checks import LIMIT_FIELDS
from riskmgmt.models import KillSwitch, RiskLimit, VarRun
from riskmgmt.var import VAR_METHODS


def _amount(**kwargs):
    return serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, required=False, allow_null=True, **kwargs
    )


class RiskLimitSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", default=None, read_only=True)
    account = serializers.IntegerField(source="account_id", read_only=True, allow_null=True)
    scope = serializers.CharField(source="scope_key", read_only=True)

    class Meta:
        model = RiskLimit
        fields = [
            "id",
            "scope",
            "symbol",
            "account",
            "price_band_pct",
            "max_order_qty",
            "max_order_notional",
            "max_position_qty",
            "max_open_orders",
            "daily_loss_limit",
            "updated_at",
        ]
        read_only_fields = fields


class RiskLimitWriteSerializer(serializers.Serializer):
    """Set the limits of one scope: no symbol and no account = the whole venue. Omitted limits
    keep their value; null removes a limit at this level."""

    symbol = serializers.CharField(max_length=32, required=False, allow_null=True)
    account = serializers.IntegerField(required=False, allow_null=True)
    price_band_pct = serializers.DecimalField(max_digits=7, decimal_places=3, required=False, allow_null=True)
    max_order_qty = _amount()
    max_order_notional = _amount()
    max_position_qty = _amount()
    max_open_orders = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    daily_loss_limit = _amount()


class KillSwitchSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id", read_only=True, allow_null=True)
    scope = serializers.CharField(source="scope_key", read_only=True)
    engaged = serializers.BooleanField(source="is_engaged", read_only=True)

    class Meta:
        model = KillSwitch
        fields = [
            "id",
            "scope",
            "account",
            "engaged",
            "reason",
            "engaged_by",
            "engaged_at",
            "canceled_orders",
            "released_at",
            "released_by",
            "release_reason",
        ]
        read_only_fields = fields


class KillSwitchEngageSerializer(serializers.Serializer):
    account = serializers.IntegerField(required=False, allow_null=True, help_text="Omit for the whole venue.")
    reason = serializers.CharField(max_length=255)


class KillSwitchReleaseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class VarRunRequestSerializer(serializers.Serializer):
    """A VaR run of one of your accounts. The ranges are the maths' own (`riskmgmt.var`): a
    request outside them is a 400 problem with a stable code (BAD_CONFIDENCE, BAD_HORIZON,
    BAD_LOOKBACK, LOOKBACK_SHORTER_THAN_HORIZON, BAD_PATHS, BAD_SEED, NO_POSITIONS, NO_HISTORY)."""

    account = serializers.IntegerField()
    method = serializers.ChoiceField(choices=list(VAR_METHODS), default="historical")
    confidence = serializers.FloatField(default=0.99, help_text="Strictly between 0 and 1, e.g. 0.95 or 0.99.")
    horizon_days = serializers.IntegerField(default=1)
    lookback_days = serializers.IntegerField(default=250, help_text="Daily returns used, at least 20.")
    paths = serializers.IntegerField(required=False, allow_null=True, help_text="Monte Carlo only; default 100,000.")
    seed = serializers.IntegerField(required=False, allow_null=True, help_text="Monte Carlo only; default random.")


class VarRunSummarySerializer(serializers.ModelSerializer):
    confidence = serializers.FloatField(read_only=True)

    class Meta:
        model = VarRun
        fields = ["id", "method", "confidence", "horizon_days", "var", "es", "currency", "created_at"]
        read_only_fields = fields


class VarRunSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id", read_only=True)
    confidence = serializers.FloatField(read_only=True)
    job = JobSerializer(read_only=True)

    class Meta:
        model = VarRun
        fields = [
            "id",
            "account",
            "method",
            "confidence",
            "horizon_days",
            "lookback_days",
            "paths",
            "seed",
            "currency",
            "positions",
            "window_start",
            "window_end",
            "returns_digest",
            "numpy_version",
            "var",
            "es",
            "pnl_mean",
            "pnl_std",
            "scenarios",
            "histogram",
            "backtest",
            "created_at",
            "finished_at",
            "job",
        ]
        read_only_fields = fields


class ExposureSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    price = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    exposure = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    share = serializers.DecimalField(max_digits=6, decimal_places=4, help_text="Of the gross exposure, 0–1.")


class LimitUsageSerializer(serializers.Serializer):
    limit = serializers.ChoiceField(choices=list(LIMIT_FIELDS))
    scope = serializers.CharField(help_text='"account", or the symbol the limit applies to.')
    value = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    used = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, allow_null=True)
    usage = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True, help_text="used / value.")


class RiskAssessmentSerializer(serializers.Serializer):
    """riskmgmt.assessment documents the score's formula."""

    account = serializers.IntegerField(source="account_id")
    currency = serializers.CharField()
    equity = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    gross_exposure = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    net_exposure = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    leverage = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    concentration = serializers.DecimalField(max_digits=6, decimal_places=4)
    exposures = ExposureSerializer(many=True)
    limits = LimitUsageSerializer(many=True)
    kill_switch_engaged = serializers.BooleanField()
    last_var = VarRunSummarySerializer(allow_null=True)
    score = serializers.IntegerField(min_value=0, max_value=100)
    level = serializers.ChoiceField(choices=["low", "medium", "high"])
    warnings = serializers.ListField(child=serializers.CharField())
