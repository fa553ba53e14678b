"""Operators run users from the admin but cannot promote themselves or take over staff."""

import pytest

from portal.errors import DomainError
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
