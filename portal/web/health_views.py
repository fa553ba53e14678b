"""Probes for orchestrators (/livez, /readyz, /healthz) and the detailed /health report."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.health import health_report, readiness_checks, uptime_seconds


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
    body = {
        "status": "down" if failing else "ok",
        "failing": failing,
        "checks": {
            check.name: {"status": check.status, "latency_ms": check.latency_ms, "detail": check.detail}
            for check in checks
        },
    }
    return JsonResponse(body, status=503 if failing else 200)


healthz = readyz


@never_cache
@require_GET
def health(request):
    """Every subsystem with status, latency, version, plus heartbeats and uptime."""
    report = health_report()
    return JsonResponse(report, status=503 if report["status"] == "down" else 200)
