"""The audit log in the admin is read-only; admin edits of users are themselves audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from audit.services import Target, audit_chain_verify, audit_record
from portal.choices import Role
from portal.models import User

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def event():
    return audit_record(
        action="auth.login_failed", actor="anonymous", target=Target(type="portal.user", label="mallory")
    )


def test_the_operator_role_may_view_audit_events_on_a_freshly_migrated_database(users):
    # Role groups are synced on post_migrate; the audit app's permissions must exist by then.
    assert users[Role.OPERATOR].has_perm("audit.view_auditevent")
    assert not users[Role.OPERATOR].has_perm("audit.change_auditevent")
    assert not users[Role.TRADER].has_perm("audit.view_auditevent")


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
def test_operators_and_admins_can_read_the_audit_log_with_filters_and_search(client, users, event, role):
    client.force_login(users[role])
    changelist = client.get(CHANGELIST)
    assert changelist.status_code == 200
    assert b"auth.login_failed" in changelist.content
    filtered = client.get(CHANGELIST, {"action": "auth.login_failed", "q": "mallory"})
    assert filtered.status_code == 200
    assert list(filtered.context["cl"].result_list) == [event]
    assert not client.get(CHANGELIST, {"q": "nobody-like-this"}).context["cl"].result_list
    detail = client.get(f"{CHANGELIST}{event.pk}/change/")
    assert detail.status_code == 200
    assert event.hash.encode() in detail.content


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
def test_nobody_can_add_change_or_delete_audit_events_in_the_admin(client, users, event, role):
    client.force_login(users[role])
    recorded_before = list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "hash"))

    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}add/", {"action": "forged"}).status_code == 403
    assert client.post(f"{CHANGELIST}{event.pk}/change/", {"action": "tampered"}).status_code == 403
    assert client.get(f"{CHANGELIST}{event.pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk_delete = client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert bulk_delete.status_code in (200, 302)  # the action does not exist: nothing happens

    page = client.get(CHANGELIST).content.decode()
    assert f'href="{CHANGELIST}add/"' not in page
    assert 'value="delete_selected"' not in page
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "hash")) == recorded_before
    assert audit_chain_verify().ok


@pytest.mark.parametrize("role", [Role.TRADER, Role.VIEWER])
def test_traders_and_viewers_cannot_open_the_audit_log(client, users, event, role):
    client.force_login(users[role])
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_editing_a_user_in_the_admin_records_admin_change_with_before_and_after(client, users):
    admin_user, target = users[Role.ADMIN], users[Role.TRADER]
    # The admin's date and time inputs have whole seconds; start from such a value.
    User.objects.filter(pk=target.pk).update(date_joined=target.date_joined.replace(microsecond=0))
    target.refresh_from_db()
    client.force_login(admin_user)
    form = {
        "username": target.username,
        "first_name": "Terry",
        "last_name": target.last_name,
        "email": "new-address@example.test",
        "is_active": "on",
        "groups": [Group.objects.get(name=Role.TRADER).pk],
        "date_joined_0": target.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": target.date_joined.strftime("%H:%M:%S"),
        # A callable default makes the form send the initial value hidden alongside, as a browser would.
        "initial-date_joined_0": target.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": target.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }

    response = client.post(
        f"/admin/portal/user/{target.pk}/change/",
        form,
        HTTP_X_REQUEST_ID="req-admin-edit",
        REMOTE_ADDR="10.1.2.3",
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    target.refresh_from_db()
    assert target.email == "new-address@example.test"
    event = AuditEvent.objects.get(action="admin.change")
    assert event.actor_type == AuditEvent.ActorType.USER and event.actor_user_id == admin_user.pk
    assert (event.target_type, event.target_id) == ("portal.user", str(target.pk))
    assert event.before == {"email": "trader@example.test", "first_name": ""}
    assert event.after == {"email": "new-address@example.test", "first_name": "Terry"}
    assert (event.request_id, event.ip) == ("req-admin-edit", "10.1.2.3")
    assert audit_chain_verify().ok


def test_changing_a_role_with_the_admin_action_records_user_set_role(client, users):
    admin_user, target = users[Role.ADMIN], users[Role.VIEWER]
    client.force_login(admin_user)

    response = client.post(
        "/admin/portal/user/",
        {"action": "set_role_trader", "_selected_action": [target.pk]},
        HTTP_X_REQUEST_ID="req-role-action",
    )

    assert response.status_code == 302
    assert User.objects.get(pk=target.pk).role == Role.TRADER
    event = AuditEvent.objects.filter(action="user.set_role", target_id=str(target.pk)).latest("seq")
    assert event.actor_user_id == admin_user.pk
    assert event.before["role"] == Role.VIEWER and event.after["role"] == Role.TRADER
    assert event.request_id == "req-role-action"


def test_deleting_a_group_in_the_admin_records_admin_delete_with_what_was_deleted(client, users):
    group = Group.objects.create(name="desk-emea")
    client.force_login(users[Role.ADMIN])
    response = client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.delete")
    assert event.before["name"] == "desk-emea" and event.target_id == str(group.pk)


def test_an_operator_exports_the_audit_log_from_the_admin_as_a_job(client, users, event, jobs_inline):
    import json

    from portal.models import Job

    client.force_login(users[Role.OPERATOR])
    form = client.post(CHANGELIST, {"action": "export_audit_log", "_selected_action": [event.pk]})
    assert form.status_code == 200 and b"Export the audit log" in form.content
    with jobs_inline():
        done = client.post(
            CHANGELIST,
            {
                "action": "export_audit_log",
                "_selected_action": [event.pk],
                "apply": "1",
                "format": "json",
                "event_action": "auth.login_failed",
                "actor": "anonymous",
            },
            follow=True,
        )
    assert b"The export is running as job" in done.content
    job = Job.objects.get(kind="export")
    assert job.status == "succeeded" and job.params["dataset"] == "audit" and job.params["actor"] == "anonymous"
    from django.conf import settings

    rows = json.loads((settings.MEDIA_ROOT / job.result_file).read_text())
    assert [(row["action"], row["actor_label"]) for row in rows] == [("auth.login_failed", "anonymous")]
