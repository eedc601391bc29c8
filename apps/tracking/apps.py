from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "apps.tracking"
    label = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.tracking import signals  # noqa: PLC0415 - models must be loaded first

        signals.connect()
