"""Operators run users from the admin but cannot promote themselves or take over staff."""

import pytest

from audit.models import AuditEvent
from portal.api_keys import api_key_create
from portal.errors import DomainError
from portal.models import ApiKey
from portal.users import user_set_role

pytestmark = pytest.mark.django_db


def test_operator_cannot_grant_operator_or_admin_nor_touch_staff(users, make_user):
    operator = users["operator"]
    newcomer = make_user(username="newcomer", role="viewer")
    assert user_set_role(user=newcomer, role="trader", actor=operator).role == "trader"
    for role in ("operator", "admin"):
        with pytest.raises(DomainError) as refused:
            user_set_role(user=newcomer, role=role, actor=operator)
        assert refused.value.code == "role_forbidden"
    with pytest.raises(DomainError):
        user_set_role(user=operator, role="viewer", actor=operator)
    assert user_set_role(user=newcomer, role="admin", actor=users["admin"]).is_superuser


def test_operator_admin_action_to_self_promote_is_refused(client, users):
    operator = users["operator"]
    client.force_login(operator)
    response = client.post(
        "/admin/portal/user/", {"action": "set_role_admin", "_selected_action": [operator.pk]}, follow=True
    )
    assert response.status_code == 200
    operator.refresh_from_db()
    assert not operator.is_superuser
    assert b"Only admins grant operator" in response.content


def test_operator_cannot_edit_a_staff_account_or_privilege_fields(client, users):
    client.force_login(users["operator"])
    admin_page = client.get(f"/admin/portal/user/{users['admin'].pk}/change/")
    assert admin_page.status_code == 200 and b'name="is_superuser"' not in admin_page.content
    trader_page = client.get(f"/admin/portal/user/{users['trader'].pk}/change/")
    assert trader_page.status_code == 200
    assert b'name="is_superuser"' not in trader_page.content and b'name="groups"' not in trader_page.content
    assert b'name="email"' in trader_page.content


def test_roles_exist_with_their_permissions_after_a_single_migrate(users):
    assert users["operator"].has_perm("audit.view_auditevent")
    assert not users["trader"].has_perm("audit.view_auditevent")


def _issue_key_in_admin(client, user):
    return client.post(
        "/admin/portal/apikey/add/", {"user": user.pk, "name": "ops key", "scopes": ["read"], "allowed_ips": ""}
    )


def test_operator_issues_keys_for_traders_but_not_for_staff_in_the_admin(client, users):
    client.force_login(users["operator"])
    refused = _issue_key_in_admin(client, users["admin"])
    assert refused.status_code == 200 and b"Only the admin role may issue keys" in refused.content
    assert not ApiKey.objects.filter(user=users["admin"]).exists()
    assert _issue_key_in_admin(client, users["trader"]).status_code == 302
    assert ApiKey.objects.filter(user=users["trader"], name="ops key").exists()
    client.force_login(users["admin"])
    assert _issue_key_in_admin(client, users["operator"]).status_code == 302


def test_only_the_keys_owner_or_an_operator_issues_a_key(users):
    with pytest.raises(DomainError) as refused:
        api_key_create(user=users["viewer"], name="not mine", scopes=["read"], actor=users["trader"])
    assert refused.value.code == "role_forbidden"


def test_only_admins_set_passwords_and_each_change_is_audited(client, users):
    trader = users["trader"]
    url = f"/admin/portal/user/{trader.pk}/password/"
    client.force_login(users["operator"])
    assert client.get(url).status_code == 403
    new_password = "Brand-new-pass-42"
    assert client.post(url, {"password1": new_password, "password2": new_password}).status_code == 403
    client.force_login(users["admin"])
    changed = client.post(url, {"password1": new_password, "password2": new_password, "usable_password": "true"})
    assert changed.status_code == 302
    trader.refresh_from_db()
    assert trader.check_password(new_password)
    event = AuditEvent.objects.get(action="admin.password_change")
    assert event.actor_user == users["admin"] and event.target_id == str(trader.pk)


@pytest.mark.parametrize("role", ["viewer", "trader"])
def test_admin_site_is_forbidden_to_signed_in_non_staff_without_a_redirect_loop(client, users, role):
    client.force_login(users[role])
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    assert len(response.redirect_chain) == 1
