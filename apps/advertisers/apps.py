from django.apps import AppConfig


class AdvertisersConfig(AppConfig):
    name = "apps.advertisers"
    label = "advertisers"
    default_auto_field = "django.db.models.BigAutoField"
