"""Serializers of the reports API: the export request (the answer is the job, JobSerializer)."""

from rest_framework import serializers

from reports.exports import EXPORT_DATASETS, EXPORT_FORMATS


class ExportRequestSerializer(serializers.Serializer):
    """An export of one dataset in one format. Every dataset takes `start` (inclusive) and `end`
    (exclusive) on its time (audit: occurred_at, orders: created_at, trades: executed_at); orders
    and trades take `account` and `symbol`; audit takes `action` and `actor` (the actor's label:
    username, key prefix or system component). Audit exports are for operators. A filter the
    dataset does not take is a 400 `bad_filter`, an end before the start a 400 `bad_range`."""

    dataset = serializers.ChoiceField(choices=list(EXPORT_DATASETS))
    format = serializers.ChoiceField(choices=list(EXPORT_FORMATS), default="csv")
    start = serializers.DateTimeField(required=False, allow_null=True)
    end = serializers.DateTimeField(required=False, allow_null=True)
    account = serializers.IntegerField(required=False, allow_null=True, help_text="orders, trades")
    symbol = serializers.CharField(required=False, allow_null=True, max_length=32, help_text="orders, trades")
    action = serializers.CharField(required=False, allow_null=True, max_length=64, help_text="audit, e.g. order.place")
    actor = serializers.CharField(required=False, allow_null=True, max_length=150, help_text="audit")
