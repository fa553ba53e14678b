"""Users and their roles: create, assign a role, and the demo users of embedded mode."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import connection, transaction

from audit.services import audit_record
from portal.choices import ROLE_ORDER, Role
from portal.errors import DomainError
from portal.models import User


@transaction.atomic
def user_set_role(*, user: User, role: str, actor: User | str | None = None) -> User:
    """Give `user` exactly one role group; operators and admins get admin-site access.

    Operators may make users viewers or traders; only admins grant operator or admin, or
    change the role of someone who already is staff (no self-promotion, no take-over).
    """
    if role not in ROLE_ORDER:
        raise DomainError("invalid_role", f"Unknown role '{role}'.", status=400)
    grants_staff = role in (Role.OPERATOR, Role.ADMIN) or user.has_role_at_least(Role.OPERATOR)
    if isinstance(actor, User) and grants_staff and not actor.has_role_at_least(Role.ADMIN):
        raise DomainError("role_forbidden", "Only admins grant operator or admin, or change staff.", status=403)
    before = {"role": user.role, "is_staff": user.is_staff, "is_superuser": user.is_superuser}
    user.groups.remove(*Group.objects.filter(name__in=ROLE_ORDER))
    user.groups.add(Group.objects.get(name=role))
    user.is_staff = role in (Role.OPERATOR, Role.ADMIN)
    user.is_superuser = role == Role.ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    user.__dict__.pop("role", None)  # drop the cached role
    after = {"role": role, "is_staff": user.is_staff, "is_superuser": user.is_superuser}
    audit_record(action="user.set_role", actor=actor, target=user, before=before, after=after)
    return user


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


DEMO_LOGINS = [DemoLogin(f"demo-{role}", f"demo-{role}-pass", role) for role in ROLE_ORDER]


@transaction.atomic
def demo_users_ensure() -> list[DemoLogin]:
    """Create the demo users (one per role) when missing; returns their logins."""
    for login in DEMO_LOGINS:
        if User.objects.filter(username=login.username).exists():
            continue
        user = User(
            username=login.username,
            email=f"{login.username}@tradeport.local",
            first_name="Demo",
            last_name=login.role.capitalize(),
        )
        user.set_password(login.password)
        user.save()
        audit_record(action="user.create", actor="demo-setup", target=user, after={"username": user.username})
        user_set_role(user=user, role=login.role, actor="demo-setup")
    return DEMO_LOGINS


#: A user's own streams (not an account's) and the counter column that numbers each.
_USER_STREAM_COUNTERS = {"jobs": "jobs_seq", "strategies": "strategies_seq"}


def user_stream_next(*, user_id: int, stream: str) -> int:
    """The next number of one of a user's own streams (`jobs`, `strategies`), taken in the
    caller's transaction: the counter's row lock is held to commit, so the numbers follow the
    commit order (take it before the audit chain's lock, which is taken last)."""
    column = _USER_STREAM_COUNTERS[stream]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {User._meta.db_table} SET {column} = {column} + 1 WHERE id = %s RETURNING {column}",  # noqa: S608
            [user_id],
        )
        (seq,) = cursor.fetchone()
    return seq


def user_stream_seq(*, user: User, stream: str) -> int:
    """The last number of one of `user`'s own streams: a new subscription starts above it."""
    return User.objects.filter(pk=user.pk).values_list(_USER_STREAM_COUNTERS[stream], flat=True).get()
