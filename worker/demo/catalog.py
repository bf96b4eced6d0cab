"""All demo tables, and the level structure the seed's Appendix (§10) prescribes for them."""

from __future__ import annotations

from worker.demo.accounts import LEVEL_0, LEVEL_1, LEVEL_2
from worker.demo.competitions import LEVEL_3, LEVEL_4, LEVEL_5, LEVEL_6
from worker.demo.model import DemoTable

DEMO_TABLES: tuple[DemoTable, ...] = (
    *LEVEL_0, *LEVEL_1, *LEVEL_2, *LEVEL_3, *LEVEL_4, *LEVEL_5, *LEVEL_6
)  # fmt: skip

# The seed's Appendix (§10) verbatim: the level structure the demo's foreign keys must produce.
APPENDIX_LEVELS: tuple[tuple[str, ...], ...] = (
    ("user", "tag", "entitlement_type", "feature", "limit", "plan"),
    ("team", "passkey_credential", "plan_feature", "plan_limit", "affiliate"),
    (
        "team_membership", "team_role", "team_invitation", "team_subscription", "team_addon",
        "team_entitlement_override", "team_usage", "team_feature_entitlement",
        "team_limit_entitlement", "competition_group", "programming_track", "scaling_group",
        "location", "skill", "class_catalog", "waiver", "notification", "sponsor_group",
    ),
    (
        "competition", "track_workout", "scaling_level", "scheduled_class_template", "sponsor",
        "organizer_request",
    ),
    (
        "competition_division", "competition_venue", "competition_event", "event_resource",
        "commerce_product", "scheduled_workout_instance", "workout_scaling_description",
    ),
    (
        "competition_registration", "competition_heat", "competition_registration_question",
        "event_judging_sheet", "division_fee", "commerce_purchase", "credit_transaction",
        "purchased_item",
    ),
    (
        "competition_registration_teammate", "competition_heat_assignment",
        "competition_registration_answer", "heat_volunteer", "judge_rotation",
        "judge_assignment_version", "video_submission", "score", "score_audit_log",
    ),
)  # fmt: skip

# Internal tables a real D1 database has; introspection must skip them.
INTERNAL_TABLES_SQL = (
    "CREATE TABLE d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, "
    "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
    "CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID",
)
