"""Typed variants of feature flags (OpenFeature): flag_type, variants, weights.

Five columns on ``feature_flags``; every existing row, and every row inserted without
them (the original ``INSERT INTO feature_flags (codename, is_active, label)``), is a
boolean flag without variants, which behaves exactly as before.

* ``feature_flags_variants_problem(...)``: what makes a row inconsistent, or null (the
  rules of ``apps/feature_flags/variants.py``);
* trigger ``feature_flags_check_variants``: refuses such a row with that sentence
  (SQLSTATE 23514, check_violation), whoever writes it;
* ``feature_flags_record_history()`` now records the variant columns too.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "feature_flags"

PROBLEM_FUNCTION = """
CREATE FUNCTION feature_flags_variants_problem(
    flag_type text, variants jsonb, default_variant text, off_variant text, weights jsonb,
    rollout_percentage integer
) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    item record;
    matches boolean;
    total integer := 0;
BEGIN
    IF jsonb_typeof(variants) IS DISTINCT FROM 'object' THEN
        RETURN 'variants must be a JSON object';
    END IF;
    IF jsonb_typeof(weights) IS DISTINCT FROM 'object' THEN
        RETURN 'weights must be a JSON object';
    END IF;
    IF variants = '{}'::jsonb THEN
        IF flag_type <> 'boolean' THEN
            RETURN 'a ' || flag_type || ' flag needs variants';
        END IF;
        IF default_variant IS NOT NULL OR off_variant IS NOT NULL OR weights <> '{}'::jsonb THEN
            RETURN 'default_variant, off_variant and weights need variants';
        END IF;
        RETURN NULL;
    END IF;
    FOR item IN SELECT key, value FROM jsonb_each(variants) LOOP
        IF item.key !~ '^[A-Za-z0-9_.-]{1,100}$' THEN
            RETURN 'variant name ' || quote_literal(item.key) || ': a variant name is 1 to 100 '
                || 'characters, each a letter, a digit, ''_'', ''-'' or ''.''';
        END IF;
        matches := CASE flag_type
            WHEN 'boolean' THEN jsonb_typeof(item.value) = 'boolean'
            WHEN 'string' THEN jsonb_typeof(item.value) = 'string'
            WHEN 'integer' THEN item.value::text ~ '^-?[0-9]+$'
            WHEN 'float' THEN jsonb_typeof(item.value) = 'number'
            WHEN 'object' THEN jsonb_typeof(item.value) = 'object'
            ELSE false
        END;
        IF NOT matches THEN
            RETURN 'variant ' || quote_literal(item.key) || ' is not a ' || flag_type || ' value';
        END IF;
    END LOOP;
    IF default_variant IS NULL OR NOT jsonb_exists(variants, default_variant) THEN
        RETURN 'default_variant must name one of the variants';
    END IF;
    IF off_variant IS NULL OR NOT jsonb_exists(variants, off_variant) THEN
        RETURN 'off_variant must name one of the variants';
    END IF;
    IF weights = '{}'::jsonb THEN
        RETURN NULL;
    END IF;
    FOR item IN SELECT key, value FROM jsonb_each(weights) LOOP
        IF NOT jsonb_exists(variants, item.key) THEN
            RETURN 'weights name unknown variants: ' || item.key;
        END IF;
        IF item.value::text !~ '^[0-9]{1,3}$' OR item.value::text::integer > 100 THEN
            RETURN 'each weight is an integer from 0 to 100';
        END IF;
        total := total + item.value::text::integer;
    END LOOP;
    IF total <> 100 THEN
        RETURN 'weights must add up to 100';
    END IF;
    IF rollout_percentage <> 100 THEN
        RETURN 'weights and a rollout_percentage below 100 cannot be combined';
    END IF;
    RETURN NULL;
END
$$
"""

CHECK_FUNCTION = """
CREATE FUNCTION feature_flags_check_variants() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    problem text;
BEGIN
    problem := feature_flags_variants_problem(
        NEW.flag_type, NEW.variants, NEW.default_variant, NEW.off_variant, NEW.weights,
        NEW.rollout_percentage);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'feature flag %: %', NEW.codename, problem
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$
"""


def _history_function(with_variants: bool) -> str:
    extra = (
        ", 'flag_type', {row}.flag_type, 'variants', {row}.variants, "
        "'default_variant', {row}.default_variant, 'off_variant', {row}.off_variant, "
        "'weights', {row}.weights"
        if with_variants
        else ""
    )

    def values(row: str) -> str:
        return (
            f"jsonb_build_object('codename', {row}.codename, 'label', {row}.label, "
            f"'description', {row}.description, 'is_active', {row}.is_active, "
            f"'user_ids', to_jsonb({row}.user_ids), "
            f"'rollout_percentage', {row}.rollout_percentage{extra.format(row=row)})"
        )

    return f"""
        CREATE OR REPLACE FUNCTION feature_flags_record_history() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            old_values jsonb;
            new_values jsonb;
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                old_values := {values("OLD")};
            END IF;
            IF TG_OP <> 'DELETE' THEN
                new_values := {values("NEW")};
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
    """  # noqa: S608 -- fixed column names, no input


def upgrade() -> None:
    op.add_column(
        TABLE,
        sa.Column(
            "flag_type",
            sa.String(10),
            server_default="boolean",
            nullable=False,
            comment=(
                "boolean (default), string, integer, float or object: the JSON type of every "
                "variant's value."
            ),
        ),
    )
    op.add_column(
        TABLE,
        sa.Column(
            "variants",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment=(
                'Variant name -> JSON value of flag_type, e.g. {"blue": "#00f"}. Empty: a '
                "boolean flag serving true when on and false when off."
            ),
        ),
    )
    op.add_column(
        TABLE,
        sa.Column(
            "default_variant",
            sa.String(100),
            nullable=True,
            comment="The variant served when the flag is on for the caller (null: no variants).",
        ),
    )
    op.add_column(
        TABLE,
        sa.Column(
            "off_variant",
            sa.String(100),
            nullable=True,
            comment=(
                "The variant served when is_active is false or the caller is outside the "
                "rollout (null: no variants)."
            ),
        ),
    )
    op.add_column(
        TABLE,
        sa.Column(
            "weights",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment=(
                "Optional variant name -> percentage (integers adding up to 100): each "
                "signed-in caller gets the variant its sticky bucket falls in. Empty: "
                "default_variant for everyone the flag is on for."
            ),
        ),
    )
    op.create_check_constraint(
        "flag_type_known",
        TABLE,
        "flag_type IN ('boolean', 'string', 'integer', 'float', 'object')",
    )
    op.execute(PROBLEM_FUNCTION)
    op.execute(
        "COMMENT ON FUNCTION feature_flags_variants_problem(text, jsonb, text, text, jsonb, "
        "integer) IS 'What makes a feature flag''s variants inconsistent, in one sentence; "
        "null when they are fine.'"
    )
    op.execute(CHECK_FUNCTION)
    op.execute(
        "COMMENT ON FUNCTION feature_flags_check_variants() IS 'Trigger function: refuses "
        "a feature_flags row whose variants are inconsistent (check_violation).'"
    )
    op.execute(
        "CREATE TRIGGER feature_flags_check_variants BEFORE INSERT OR UPDATE ON feature_flags "
        "FOR EACH ROW EXECUTE FUNCTION feature_flags_check_variants()"
    )
    op.execute(_history_function(with_variants=True))


def downgrade() -> None:
    op.execute(_history_function(with_variants=False))
    op.execute("DROP TRIGGER feature_flags_check_variants ON feature_flags")
    op.execute("DROP FUNCTION feature_flags_check_variants()")
    op.execute(
        "DROP FUNCTION feature_flags_variants_problem(text, jsonb, text, text, jsonb, integer)"
    )
    op.drop_constraint(op.f("ck_feature_flags_flag_type_known"), TABLE, type_="check")
    for column in ("weights", "off_variant", "default_variant", "variants", "flag_type"):
        op.drop_column(TABLE, column)
