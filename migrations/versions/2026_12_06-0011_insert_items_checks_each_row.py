"""opengovfood_insert_items answers an id only for a row that is in the table.

0010's function took ids[i] as created once its INSERT raised no error. A BEFORE trigger that
returns NULL, or a rule, makes PostgreSQL skip a row without an error: the worker then recorded
`created` and emitted an event for an item that does not exist. Here each INSERT returns the ids
it stored; a chunk that stored fewer (or others) is undone and its rows inserted one by one, and
a row that was not stored is answered as a refusal (P0001, "item N was not inserted"), so the worker
dead-letters it like any row the database refuses. A rule that makes `RETURNING` impossible
(feature_not_supported) is a refusal of every row too. Same signature, same answer.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSALS = (
    "data_exception OR integrity_constraint_violation OR plpgsql_error OR syntax_error_or_access_rule_violation"
    " OR feature_not_supported"
)
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
    stored integer;
    stored_id integer;
    inserted boolean;
    i integer;
BEGIN
    WHILE first <= total LOOP
        last := least(first + 15, total);
        BEGIN
            WITH stored_rows AS (
                INSERT INTO item (id, title, description, status, owner_id)
                SELECT * FROM unnest(ids[first:last], titles[first:last], descriptions[first:last],
                                     statuses[first:last], owners[first:last])
                RETURNING id
            ) SELECT count(*) INTO stored FROM stored_rows WHERE id = ANY(ids[first:last]);
            IF stored <> last - first + 1 THEN
                RAISE EXCEPTION 'a row of the chunk was not inserted';  -- undone: each row alone, below
            END IF;
            inserted := true;
        EXCEPTION WHEN {REFUSALS} THEN
            inserted := false;  -- a row of this chunk was refused or skipped: each of its rows alone, below
        END;
        FOR i IN first .. last LOOP
            new_id := NULL; failed_state := NULL; failed_message := NULL; failed_detail := NULL;
            failed_constraint := NULL;
            IF inserted THEN
                new_id := ids[i];
            ELSE
                BEGIN
                    stored_id := NULL;
                    INSERT INTO item (id, title, description, status, owner_id)
                    VALUES (ids[i], titles[i], descriptions[i], statuses[i], owners[i])
                    RETURNING id INTO stored_id;
                    IF stored_id IS DISTINCT FROM ids[i] THEN
                        RAISE EXCEPTION 'item % was not inserted (a trigger or a rule on item skipped the row)',
                                        ids[i];
                    END IF;
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


def _trusting_its_ids() -> str:
    """0010's function, which this one replaces."""
    path = Path(__file__).with_name("2026_11_29-0010_insert_items_in_chunks.py")
    spec = importlib.util.spec_from_file_location("migration_0010", path)
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
        op.execute(_trusting_its_ids())
