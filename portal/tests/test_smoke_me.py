import pytest


@pytest.mark.django_db
def test_me_with_api_key_names_user_role_and_key(trader, key_client):
    response = key_client(trader, scopes=["read"]).get("/api/v1/me")
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "trader1"
    assert body["role"] == "trader"
    assert body["auth_method"] == "api_key"
    assert body["api_key"]["scopes"] == ["read"]
    assert response["X-Request-ID"]
    assert response["Server-Timing"].startswith("app;dur=")
