from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "apps.quality"
    label = "quality"
    default_auto_field = "django.db.models.BigAutoField"
