from django.apps import AppConfig


class MarketdataConfig(AppConfig):
    name = "marketdata"

    def ready(self) -> None:
        from marketdata.streams import publish, publish_job, publish_strategy
        from portal.jobs import job_changed
        from trading.events import trading_events_committed
        from trading.strategies.services import strategy_changed

        trading_events_committed.connect(publish, dispatch_uid="marketdata.streams.publish")
        job_changed.connect(publish_job, dispatch_uid="marketdata.streams.publish_job")
        strategy_changed.connect(publish_strategy, dispatch_uid="marketdata.streams.publish_strategy")
