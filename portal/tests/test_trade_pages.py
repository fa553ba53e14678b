"""Trade page and order history without a browser: ticket errors as form errors, account
switching, cancel only your own orders, history filters and the CSV download."""

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client

from conftest import TEST_PASSWORD
from trading.models import Order

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def tina(funded_account):
    main = funded_account("tina", USDT="10000", BTC="2")
    algo = funded_account("tina", name="Algo", USDT="500")
    client = Client()
    assert client.login(username="tina", password=TEST_PASSWORD)
    return client, main, algo


def _ticket(client, **fields):
    page = client.get("/trade/?symbol=BTCUSDT")
    token = page.context["form"].initial["form_token"]
    body = {
        "form_token": token,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": "95",
        "time_in_force": "GTC",
        **fields,
    }
    return client.post("/trade/", body)


def test_a_refused_order_comes_back_as_a_form_error_on_its_field(tina):
    client, main, _ = tina
    response = _ticket(client, price="95.001")
    assert response.status_code == 422
    assert "TICK_SIZE" in " ".join(response.context["form"].errors["price"])
    assert Order.objects.get().status == "REJECTED"


def test_the_same_ticket_sent_twice_places_one_order(tina):
    client, main, _ = tina
    page = client.get("/trade/?symbol=BTCUSDT")
    body = {
        "form_token": page.context["form"].initial["form_token"],
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": "95",
        "time_in_force": "GTC",
    }
    assert client.post("/trade/", body).status_code == 302
    assert client.post("/trade/", body).status_code == 302
    assert Order.objects.count() == 1


def test_switching_accounts_places_orders_on_the_chosen_one(tina):
    client, main, algo = tina
    client.get(f"/trade/?account={algo.pk}")
    assert _ticket(client, quantity="0.5").status_code == 302
    assert Order.objects.get().account_id == algo.pk
    page = client.get("/trade/")
    assert page.context["account"].pk == algo.pk


def test_nobody_cancels_someone_elses_order_from_the_portal(tina, funded_account, place):
    client, *_ = tina
    other = funded_account("olga", USDT="1000")
    order = place(other, "BUY", qty="1", price="95")
    assert client.post(f"/trade/orders/{order.pk}/cancel/").status_code == 404
    assert Order.objects.get(pk=order.pk).status == "NEW"


def test_order_history_filters_and_downloads_csv(tina, place, market):
    client, main, _ = tina
    place(main, "BUY", qty="1", price="95")
    place(main, "SELL", qty="1", price="105")
    place(main, "BUY", qty="1", price="50", instrument=market.ethusdt)
    page = client.get("/orders/", {"symbol": "BTCUSDT", "side": "SELL"})
    assert [o.side for o in page.context["orders"]] == ["SELL"]
    download = client.get("/orders/", {"symbol": "BTCUSDT", "format": "csv"})
    assert download["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert {row["symbol"] for row in rows} == {"BTCUSDT"} and len(rows) == 2
    assert {row["price"] for row in rows} == {"95.00000000", "105.00000000"}
