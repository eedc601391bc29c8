from django.db import migrations


def create_network_default(apps, schema_editor):
    """The network default profile exists from the start, so staff find it in the admin. Its
    hold threshold stays empty (each offer's quality_threshold applies) until staff set one."""
    QualityProfile = apps.get_model("quality", "QualityProfile")
    if not QualityProfile.objects.filter(offer__isnull=True).exists():
        QualityProfile.objects.create(offer=None, weights={}, reject_below=20, auto_reject=True)


class Migration(migrations.Migration):
    dependencies = [("quality", "0001_initial")]

    operations = [migrations.RunPython(create_network_default, migrations.RunPython.noop)]
