from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Identity & access"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from portal import signals  # noqa: F401  (login / logout audit receivers)
        from portal.rawsql import keep_plans_across_rollbacks
        from portal.roles import roles_sync_on_migrate

        post_migrate.connect(roles_sync_on_migrate, sender=self)
        connection_created.connect(keep_plans_across_rollbacks, dispatch_uid="keep_plans_across_rollbacks")
