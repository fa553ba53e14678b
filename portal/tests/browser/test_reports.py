"""The reports page on the full stack (daphne + a real Celery worker on the reports queue):
generate a PDF statement, watch its progress bar complete, download it and read it back."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from pypdf import PdfReader

from portal.tests.servers import CeleryWorker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def reports_worker(daphne_url, tmp_path):
    worker = CeleryWorker(tmp_path / "worker.log", queues="reports,exports").start()
    yield worker
    worker.stop()


def test_a_trader_generates_a_pdf_statement_and_downloads_it(
    funded_account, place, daphne_login, reports_worker, console_errors, artifacts_dir, tmp_path
):
    tina = funded_account("tina", USDT="5000")
    seller = funded_account("seller", BTC="3")
    place(seller, "SELL", qty="1.5", price="103.45")
    place(tina, "BUY", qty="1.5", price="103.45")
    page = daphne_login(tina.owner)
    page.goto("/reports/")
    form = page.get_by_test_id("report-form")
    form.get_by_label("Report").select_option("statement")
    form.get_by_label("Format").select_option("pdf")
    form.get_by_label("End").fill(timezone.now().date().isoformat())
    page.get_by_test_id("generate-report").click()
    expect(page.get_by_test_id("report-jobs")).to_contain_text("statement · PDF")
    download_link = page.get_by_test_id("download")
    expect(download_link).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("job-progress")).to_have_count(0)
    with page.expect_download() as started:
        download_link.click()
    path = tmp_path / started.value.suggested_filename
    started.value.save_as(path)
    assert path.name.startswith("statement-") and path.suffix == ".pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(path).pages)
    assert "103.45" in text and f"#{tina.pk}" in text
    page.screenshot(path=str(artifacts_dir / "reports.png"), full_page=True)
    assert console_errors == []
