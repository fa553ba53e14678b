"""Probes for orchestrators (/livez, /readyz, /healthz) and the detailed /health report."""

import ipaddress
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

from portal.choices import Role
from portal.health import health_report, readiness_checks, uptime_seconds
from portal.net import client_ip


def is_internal_or_operator(request) -> bool:
    ip = client_ip(request)
    internal = ip is not None and any(
        ipaddress.ip_address(ip) in ipaddress.ip_network(network) for network in settings.INTERNAL_NETWORKS
    )
    user = getattr(request, "user", None)
    return internal or (user is not None and user.is_authenticated and user.has_role_at_least(Role.OPERATOR))


def internal_only(view):
    """Details (versions, metrics) only for INTERNAL_NETWORKS or a signed-in operator."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not is_internal_or_operator(request):
            return JsonResponse({"status": "forbidden", "detail": "Internal networks and operators only."}, status=403)
        return view(request, *args, **kwargs)

    return guarded


@never_cache
@require_GET
def livez(request):
    """The process is up and answering; checks nothing else."""
    return JsonResponse({"status": "ok", "uptime_seconds": uptime_seconds()})


@never_cache
@require_GET
def readyz(request):
    """Every part the web process needs answers; 503 names the failing ones."""
    checks = readiness_checks()
    failing = [check.name for check in checks if not check.ok]
    body: dict[str, Any] = {
        "status": "down" if failing else "ok",
        "failing": failing,
        "checks": {check.name: {"status": check.status, "latency_ms": check.latency_ms} for check in checks},
    }
    if is_internal_or_operator(request):  # hosts and error texts only for the inside
        for check in checks:
            body["checks"][check.name]["detail"] = check.detail
    return JsonResponse(body, status=503 if failing else 200)


healthz = readyz


@never_cache
@require_GET
@internal_only
def health(request):
    """Every subsystem with status, latency, version, plus heartbeats and uptime."""
    report = health_report()
    return JsonResponse(report, status=503 if report["status"] == "down" else 200)


metrics = internal_only(ExportToDjangoView)
