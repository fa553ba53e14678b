from django.apps import AppConfig


class RiskmgmtConfig(AppConfig):
    name = "riskmgmt"
