"""Audit of logins, logouts and failed logins, whichever path they take; and dropping
cached API key records whenever what they hold changes."""

from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import Target, audit_record
from portal.api_keys import api_key_cache_forget
from portal.models import ApiKey, User


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=user, target=user)


@receiver(user_logged_out)
def _audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=user, target=user)


@receiver(user_login_failed)
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action="auth.login_failed", actor="anonymous", target=Target(type="portal.user", id="", label=username)
    )


def _forget(**which) -> None:
    """Drop now, and again after commit: a request that read the old row before the commit
    must not leave it cached."""
    api_key_cache_forget(**which)
    transaction.on_commit(lambda: api_key_cache_forget(**which))


@receiver([post_save, post_delete], sender=ApiKey)
def _forget_cached_key(sender, instance, **kwargs):
    _forget(prefix=instance.prefix)


@receiver([post_save, post_delete], sender=User)
@receiver([post_save, post_delete], sender=TOTPDevice)
def _forget_cached_keys_of_user(sender, instance, **kwargs):
    _forget(user_id=instance.pk if sender is User else instance.user_id)


@receiver(m2m_changed, sender=User.groups.through)
def _forget_cached_keys_after_role_change(sender, instance, action, pk_set, **kwargs):
    if not action.startswith("post_"):
        return
    if isinstance(instance, User):
        _forget(user_id=instance.pk)
    elif pk_set is None:  # a group cleared of all its members
        _forget(every=True)
    else:  # some of a group's members changed
        for user_id in pk_set:
            _forget(user_id=user_id)


@receiver([post_save, post_delete], sender=Group)
def _forget_cached_keys_after_group_change(sender, instance, **kwargs):
    _forget(every=True)
