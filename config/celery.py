import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

# One queue per kind of work, so each can be scaled out on its own workers.
QUEUES = ("default", "clicks", "postbacks", "quality", "commissions", "stats")

app = Celery("opencpa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.autodiscover_tasks()
