"""What a report is, without building one: its kinds, formats, period and file name, and the
checks of a request (`report_spec_check`). Light on purpose: the admin, the API and the portal
import it in every process, while `reports.documents` (ReportLab, openpyxl) loads only where a
report is built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from portal.errors import DomainError

REPORT_KINDS = ("statement", "blotter", "risk", "audit")
REPORT_FORMATS = ("pdf", "csv", "xlsx")
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
REPORT_TITLES = {
    "statement": "Account statement",
    "blotter": "Trade blotter",
    "risk": "Risk report",
    "audit": "Audit report",
}
#: Reports of one account; the audit report covers the whole venue.
ACCOUNT_REPORTS = frozenset({"statement", "blotter", "risk"})


@dataclass(frozen=True)
class ReportSpec:
    """What a report covers: [start, end) in UTC; the account for the account reports."""

    kind: str
    format: str
    start: datetime
    end: datetime
    account_id: int | None
    requested_by: str


def report_spec_check(spec: ReportSpec) -> None:
    """Refuse (400) a spec no report can be built from: an unknown kind (`unknown_report`) or
    format (`unknown_format`), a period without a time zone or that does not end after it starts
    (`bad_range`), an account report without an account (`account_required`), or an audit report
    narrowed to an account (`account_not_applicable`: it covers the whole venue)."""
    if spec.kind not in REPORT_KINDS:
        raise DomainError(
            "unknown_report", f"No report {spec.kind!r}; choose one of {', '.join(REPORT_KINDS)}.", status=400
        )
    if spec.format not in REPORT_FORMATS:
        raise DomainError(
            "unknown_format", f"No format {spec.format!r}; choose one of {', '.join(REPORT_FORMATS)}.", status=400
        )
    if timezone.is_naive(spec.start) or timezone.is_naive(spec.end):
        raise DomainError("bad_range", "The period's start and end must carry a time zone.", status=400)
    if spec.end <= spec.start:
        raise DomainError(
            "bad_range", "The period must end after it starts.", status=400, errors={"end": ["Must be after start."]}
        )
    if spec.kind in ACCOUNT_REPORTS and spec.account_id is None:
        raise DomainError(
            "account_required",
            f"The {REPORT_TITLES[spec.kind].lower()} is of one account: name it.",
            status=400,
            errors={"account": ["Required."]},
        )
    if spec.kind not in ACCOUNT_REPORTS and spec.account_id is not None:
        raise DomainError(
            "account_not_applicable",
            "The audit report covers the whole venue; it takes no account.",
            status=400,
            errors={"account": ["Not taken by this report."]},
        )


def report_filename(spec: ReportSpec) -> str:
    """`<kind>[-<account>]-<first day>-<last day>.<format>`, both days included as people say a
    period, e.g. statement-42-2026-11-01-2026-11-30.pdf for [Nov 1, Dec 1); a bound that is not
    midnight UTC is written as the moment itself, e.g. 2026-12-01T093000."""
    subject = spec.kind if spec.account_id is None else f"{spec.kind}-{spec.account_id}"
    end = spec.end.astimezone(UTC)
    last = (end - timedelta(days=1)).date().isoformat() if end.time() == time(0) else _stamp(end)
    return f"{subject}-{_stamp(spec.start)}-{last}.{spec.format}"


def _stamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.date().isoformat() if moment.time() == time(0) else moment.strftime("%Y-%m-%dT%H%M%S")
