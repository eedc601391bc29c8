"""Conversions keep what they need of their click, so the click table can be partitioned by day
and old partitions dropped. Existing rows are filled from their click before the link goes."""

import django.utils.timezone
from django.db import migrations, models

FILL = """
UPDATE conversions_conversion AS c SET
    click_id = k.click_id, click_created_at = k.created_at, click_ip = k.ip,
    click_country = k.country, click_is_bot = k.is_bot, sub1 = k.sub1, sub2 = k.sub2,
    sub3 = k.sub3, sub4 = k.sub4, sub5 = k.sub5, source_id = k.source_id,
    aff_click_id = k.aff_click_id, creative_id = k.creative_id
FROM tracking_click AS k WHERE k.id = c.click_fk_id;
"""


def _char(length):
    return models.CharField(max_length=length, blank=True)


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0002_initial"),
        ("tracking", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="conversion", name="conversion_unique_click_goal_order"
        ),
        migrations.RenameField(model_name="conversion", old_name="click", new_name="click_fk"),
        migrations.AddField("conversion", "click_id", _char(32)),
        migrations.AddField(
            "conversion",
            "click_created_at",
            models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            "conversion", "click_ip", models.GenericIPAddressField(null=True, blank=True)
        ),
        migrations.AddField("conversion", "click_country", _char(2)),
        migrations.AddField("conversion", "click_is_bot", models.BooleanField(default=False)),
        migrations.AddField("conversion", "sub1", _char(255)),
        migrations.AddField("conversion", "sub2", _char(255)),
        migrations.AddField("conversion", "sub3", _char(255)),
        migrations.AddField("conversion", "sub4", _char(255)),
        migrations.AddField("conversion", "sub5", _char(255)),
        migrations.AddField("conversion", "source_id", _char(255)),
        migrations.AddField("conversion", "aff_click_id", _char(255)),
        migrations.AddField("conversion", "creative_id", _char(64)),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
        migrations.RemoveField(model_name="conversion", name="click_fk"),
        migrations.AlterField(
            "conversion", "click_id", models.CharField(max_length=32)
        ),
        migrations.AlterField("conversion", "click_created_at", models.DateTimeField()),
        migrations.AddConstraint(
            model_name="conversion",
            constraint=models.UniqueConstraint(
                fields=("click_id", "goal", "order_id"), name="conversion_unique_click_goal_order"
            ),
        ),
        migrations.AddIndex(
            model_name="conversion",
            index=models.Index(
                fields=["offer", "click_ip", "created_at"], name="conv_offer_click_ip_time"
            ),
        ),
    ]
