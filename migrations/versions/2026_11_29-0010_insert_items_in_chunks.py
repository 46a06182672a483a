"""opengovfood_insert_items: the rows' ids drawn at once, then 16 rows to one INSERT; row by row only
in a chunk the database refuses.

0008's function inserted every row alone in a subtransaction of its own, which cost twice a plain
multi-row INSERT, so the worker tried such an INSERT first and called the function only after it
failed: a run holding one refused row paid for both. This one costs about what a plain INSERT does
when nothing is refused, so the worker calls it for every run of item.create on PostgreSQL. Same
signature, same answer: per row, in order, its id or why it was refused.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSALS = "data_exception OR integrity_constraint_violation OR plpgsql_error OR syntax_error_or_access_rule_violation"
FUNCTION = f"""
CREATE OR REPLACE FUNCTION opengovfood_insert_items(
    titles text[], descriptions text[], statuses text[], owners integer[]
) RETURNS TABLE (new_id integer, failed_state text, failed_message text, failed_detail text, failed_constraint text)
LANGUAGE plpgsql AS $$
DECLARE
    total integer := coalesce(array_length(titles, 1), 0);
    ids integer[] := ARRAY(SELECT nextval('item_id_seq') FROM generate_series(1, total));
    first integer := 1;
    last integer;
    inserted boolean;
    i integer;
BEGIN
    WHILE first <= total LOOP
        last := least(first + 15, total);
        BEGIN
            INSERT INTO item (id, title, description, status, owner_id)
            SELECT * FROM unnest(ids[first:last], titles[first:last], descriptions[first:last],
                                 statuses[first:last], owners[first:last]);
            inserted := true;
        EXCEPTION WHEN {REFUSALS} THEN
            inserted := false;  -- a row of this chunk was refused: each of its rows alone, below
        END;
        FOR i IN first .. last LOOP
            new_id := NULL; failed_state := NULL; failed_message := NULL; failed_detail := NULL;
            failed_constraint := NULL;
            IF inserted THEN
                new_id := ids[i];
            ELSE
                BEGIN
                    INSERT INTO item (id, title, description, status, owner_id)
                    VALUES (ids[i], titles[i], descriptions[i], statuses[i], owners[i]);
                    new_id := ids[i];
                EXCEPTION WHEN {REFUSALS} THEN
                    GET STACKED DIAGNOSTICS failed_state = RETURNED_SQLSTATE, failed_message = MESSAGE_TEXT,
                                            failed_detail = PG_EXCEPTION_DETAIL, failed_constraint = CONSTRAINT_NAME;
                END;
            END IF;
            RETURN NEXT;
        END LOOP;
        first := last + 1;
    END LOOP;
END $$
"""


def _row_by_row() -> str:
    """0008's function, which this one replaces."""
    path = Path(__file__).with_name("2026_11_29-0008_insert_items_one_by_one.py")
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.FUNCTION)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_row_by_row())
