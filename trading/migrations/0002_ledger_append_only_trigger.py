"""PostgreSQL refuses UPDATE and DELETE on ledger entries (DESIGN §5: the ledger is append-only)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION trading_ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'trading_ledgerentry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trading_ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON trading_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION trading_ledger_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS trading_ledger_no_update_delete ON trading_ledgerentry;
DROP FUNCTION IF EXISTS trading_ledger_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("trading", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
