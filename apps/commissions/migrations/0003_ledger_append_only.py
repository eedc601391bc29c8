from django.db import migrations

# The ledger is append-only: the database itself refuses UPDATE and DELETE on entries.
SQL = """
CREATE OR REPLACE FUNCTION commissions_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER commissions_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON commissions_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION commissions_ledger_append_only();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS commissions_ledgerentry_append_only ON commissions_ledgerentry;
DROP FUNCTION IF EXISTS commissions_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("commissions", "0002_initial")]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
