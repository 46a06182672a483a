"""opengovfood_insert_items: a run of items inserted one by one in one call, each failure alone (PostgreSQL).

A batch's multi-row INSERT fails as a whole when the database refuses one row (a trigger, a
constraint): the worker then inserts that run through this function, where each row has a
subtransaction of its own, and learns in one round trip which rows went in (their ids) and why each
other one was refused. Transient failures (connection, serialization, resources) are not caught:
the whole batch is retried.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION opengovfood_insert_items(
    titles text[], descriptions text[], statuses text[], owners integer[]
) RETURNS TABLE (new_id integer, failed_state text, failed_message text, failed_detail text, failed_constraint text)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(titles, 1), 0) LOOP
        new_id := NULL; failed_state := NULL; failed_message := NULL; failed_detail := NULL; failed_constraint := NULL;
        BEGIN
            INSERT INTO item (title, description, status, owner_id)
            VALUES (titles[i], descriptions[i], statuses[i], owners[i])
            RETURNING item.id INTO new_id;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation OR plpgsql_error
                       OR syntax_error_or_access_rule_violation THEN
            GET STACKED DIAGNOSTICS failed_state = RETURNED_SQLSTATE, failed_message = MESSAGE_TEXT,
                                    failed_detail = PG_EXCEPTION_DETAIL, failed_constraint = CONSTRAINT_NAME;
        END;
        RETURN NEXT;
    END LOOP;
END $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS opengovfood_insert_items(text[], text[], text[], integer[])")
