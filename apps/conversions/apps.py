from django.apps import AppConfig


class ConversionsConfig(AppConfig):
    name = "apps.conversions"
    label = "conversions"
    default_auto_field = "django.db.models.BigAutoField"
