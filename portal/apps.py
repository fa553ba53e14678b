from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Identity & access"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from portal import signals  # noqa: F401  (login / logout audit receivers)
        from portal.roles import roles_sync_on_migrate

        post_migrate.connect(roles_sync_on_migrate, sender=self)
