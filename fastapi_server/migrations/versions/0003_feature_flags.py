"""The feature_flags app's tables: flags, their history, and the triggers that keep them.

Triggers (so that psql changes behave exactly like API and script changes):
* ``feature_flags_stamp_actor``: sets ``created_by``/``updated_by`` from the actor;
* ``feature_flags_set_updated_on``: the platform's ``updated_on`` trigger;
* ``feature_flags_record_history``: appends to ``feature_flag_history``;
* ``feature_flags_notify`` / ``feature_flags_notify_truncate``: ``NOTIFY
  feature_flags_changed`` with the codename (empty: reload everything), delivered on
  commit to every API process's cache listener;
* ``feature_flag_history_append_only``: refuses UPDATE, DELETE and TRUNCATE of history.

The actor is ``current_setting('app.actor')`` when the API or a script set it for the
transaction (``set_config('app.actor', ..., true)``), else the database role.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fastapi_server.migrations.helpers import add_updated_on_trigger, drop_updated_on_trigger

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = {
    "feature_flags_actor()": (
        """
        CREATE FUNCTION feature_flags_actor() RETURNS text LANGUAGE sql STABLE AS $$
            SELECT coalesce(nullif(current_setting('app.actor', true), ''), current_user::text)
        $$
        """,
        "Who is changing feature flags: app.actor (set by the API or a script for its "
        "transaction), else the database role.",
    ),
    "feature_flags_stamp_actor()": (
        """
        CREATE FUNCTION feature_flags_stamp_actor() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                NEW.created_by := feature_flags_actor();
            ELSE
                NEW.created_by := OLD.created_by;
            END IF;
            NEW.updated_by := feature_flags_actor();
            RETURN NEW;
        END
        $$
        """,
        "Trigger function: keeps feature_flags.created_by and updated_by.",
    ),
    "feature_flags_record_history()": (
        """
        CREATE FUNCTION feature_flags_record_history() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            old_values jsonb;
            new_values jsonb;
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                old_values := jsonb_build_object(
                    'codename', OLD.codename, 'label', OLD.label,
                    'description', OLD.description, 'is_active', OLD.is_active,
                    'user_ids', to_jsonb(OLD.user_ids),
                    'rollout_percentage', OLD.rollout_percentage);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                new_values := jsonb_build_object(
                    'codename', NEW.codename, 'label', NEW.label,
                    'description', NEW.description, 'is_active', NEW.is_active,
                    'user_ids', to_jsonb(NEW.user_ids),
                    'rollout_percentage', NEW.rollout_percentage);
            END IF;
            IF old_values = new_values THEN
                RETURN NULL;  -- nothing a reader cares about changed
            END IF;
            INSERT INTO feature_flag_history (codename, action, old_values, new_values, actor)
            VALUES (
                CASE TG_OP WHEN 'DELETE' THEN OLD.codename ELSE NEW.codename END,
                CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated'
                    ELSE 'deleted' END,
                old_values, new_values, feature_flags_actor());
            RETURN NULL;
        END
        $$
        """,
        "Trigger function: appends every change of feature_flags to feature_flag_history.",
    ),
    "feature_flags_notify()": (
        """
        CREATE FUNCTION feature_flags_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('feature_flags_changed', '');
                RETURN NULL;
            END IF;
            IF TG_OP <> 'INSERT' THEN
                PERFORM pg_notify('feature_flags_changed', OLD.codename);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                PERFORM pg_notify('feature_flags_changed', NEW.codename);
            END IF;
            RETURN NULL;
        END
        $$
        """,
        "Trigger function: NOTIFY feature_flags_changed with the codename (empty: all), "
        "delivered on commit to every API process, which reloads that flag.",
    ),
    "feature_flag_history_refuse_change()": (
        """
        CREATE FUNCTION feature_flag_history_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'feature_flag_history is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """,
        "Trigger function: keeps feature_flag_history append-only.",
    ),
}


def upgrade() -> None:
    op.create_table(
        "feature_flags",
        sa.Column(
            "codename",
            sa.String(100),
            nullable=False,
            comment="The name the code uses, e.g. FF_ENABLE_REGISTRATION (letters, digits, _ - .).",
        ),
        sa.Column(
            "label",
            sa.String(200),
            server_default="",
            nullable=False,
            comment="Short human name shown to administrators.",
        ),
        sa.Column(
            "description",
            sa.Text(),
            server_default="",
            nullable=False,
            comment="What the flag does and who relies on it.",
        ),
        sa.Column(
            "is_active",
            sa.Boolean(),
            server_default=sa.false(),
            nullable=False,
            comment="Master switch: false means off for everyone, whatever the targeting says.",
        ),
        sa.Column(
            "user_ids",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("'{}'::uuid[]"),
            nullable=False,
            comment="Users who see the flag on (when active) whatever rollout_percentage says.",
        ),
        sa.Column(
            "rollout_percentage",
            sa.SmallInteger(),
            server_default=sa.text("100"),
            nullable=False,
            comment=(
                "0-100: share of signed-in users who see the flag on (when active), by a sticky "
                "hash of codename and user id; anonymous callers only at 100."
            ),
        ),
        sa.Column(
            "created_by",
            sa.Text(),
            nullable=False,
            comment="Who created the row: user email, script:<os user>, or the database role.",
        ),
        sa.Column(
            "updated_by",
            sa.Text(),
            nullable=False,
            comment="Who changed the row last (same forms as created_by; set by a trigger).",
        ),
        sa.Column(
            "created_on",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When the row was created.",
        ),
        sa.Column(
            "updated_on",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When the row last changed (set by a trigger on every UPDATE).",
        ),
        sa.CheckConstraint(
            "codename ~ '^[A-Za-z0-9_.-]{1,100}$'", name=op.f("ck_feature_flags_codename_format")
        ),
        # GET /feature-flags/{codename} cannot reach these (another endpoint; dot segments).
        sa.CheckConstraint(
            "codename NOT IN ('evaluate', '.', '..')",
            name=op.f("ck_feature_flags_codename_not_reserved"),
        ),
        sa.CheckConstraint(
            "rollout_percentage BETWEEN 0 AND 100",
            name=op.f("ck_feature_flags_rollout_percentage_range"),
        ),
        sa.PrimaryKeyConstraint("codename", name=op.f("pk_feature_flags")),
        comment=(
            "Feature flags. Edit freely with SQL: triggers record every change in "
            "feature_flag_history and notify the API processes, which refresh within a "
            "second."
        ),
    )
    op.create_table(
        "feature_flag_history",
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(),
            nullable=False,
            comment="Order of the changes.",
        ),
        sa.Column(
            "codename",
            sa.String(100),
            nullable=False,
            comment="The flag that changed (kept after it is deleted).",
        ),
        sa.Column("action", sa.String(10), nullable=False, comment="created, updated or deleted."),
        sa.Column(
            "old_values",
            postgresql.JSONB(),
            nullable=True,
            comment="The flag before the change (null for created).",
        ),
        sa.Column(
            "new_values",
            postgresql.JSONB(),
            nullable=True,
            comment="The flag after the change (null for deleted).",
        ),
        sa.Column(
            "actor",
            sa.Text(),
            nullable=False,
            comment="Who changed it: user email (API), script:<os user>, else the database role.",
        ),
        sa.Column(
            "changed_on",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When the change happened.",
        ),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'deleted')",
            name=op.f("ck_feature_flag_history_action_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_flag_history")),
        comment=(
            "Append-only audit trail of feature_flags, written by a trigger for every "
            "INSERT, UPDATE and DELETE (API, scripts and psql alike)."
        ),
    )
    op.create_index(
        "ix_feature_flag_history_codename_id", "feature_flag_history", ["codename", "id"]
    )

    for signature, (body, comment) in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"COMMENT ON FUNCTION {signature} IS '{comment}'")

    op.execute(
        "CREATE TRIGGER feature_flags_stamp_actor BEFORE INSERT OR UPDATE ON feature_flags "
        "FOR EACH ROW EXECUTE FUNCTION feature_flags_stamp_actor()"
    )
    add_updated_on_trigger("feature_flags")
    op.execute(
        "CREATE TRIGGER feature_flags_record_history "
        "AFTER INSERT OR UPDATE OR DELETE ON feature_flags "
        "FOR EACH ROW EXECUTE FUNCTION feature_flags_record_history()"
    )
    op.execute(
        "CREATE TRIGGER feature_flags_notify AFTER INSERT OR UPDATE OR DELETE ON feature_flags "
        "FOR EACH ROW EXECUTE FUNCTION feature_flags_notify()"
    )
    op.execute(
        "CREATE TRIGGER feature_flags_notify_truncate AFTER TRUNCATE ON feature_flags "
        "FOR EACH STATEMENT EXECUTE FUNCTION feature_flags_notify()"
    )
    op.execute(
        "CREATE TRIGGER feature_flag_history_append_only "
        "BEFORE UPDATE OR DELETE ON feature_flag_history "
        "FOR EACH ROW EXECUTE FUNCTION feature_flag_history_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER feature_flag_history_no_truncate BEFORE TRUNCATE ON feature_flag_history "
        "FOR EACH STATEMENT EXECUTE FUNCTION feature_flag_history_refuse_change()"
    )


def downgrade() -> None:
    drop_updated_on_trigger("feature_flags")
    op.drop_table("feature_flag_history")  # its triggers go with it
    op.drop_table("feature_flags")
    for signature in reversed(list(FUNCTIONS)):
        op.execute(f"DROP FUNCTION {signature}")
