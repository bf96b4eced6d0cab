"""Demo tables of levels 0-2 of the seed's Appendix (§10): users, plans, teams.

Foreign keys are chosen so that the dependency levels come out exactly as the Appendix
lists them (a test checks it). `team.parentTeamId` is a deliberate self-reference.
Tables without version columns: `plan_feature`, `plan_limit`, `team_feature_entitlement`
(composite primary keys, no updatedAt/updateCounter), so consumers fall back to `ts_ms`.
"""

from __future__ import annotations

from worker.demo import values as v
from worker.demo.model import (
    DemoColumn,
    DemoIndex,
    DemoTable,
    boolean,
    json_text,
    key_text,
    number,
    real,
    ref,
    stamp,
    stamp_ms,
    text,
)

STATUS = v.choice_of("pending", "active", "cancelled", "completed")


def t(name: str, prefix: str, rows: int, *columns: DemoColumn, **kw: object) -> DemoTable:
    return DemoTable(name, prefix, rows, columns, **kw)  # type: ignore[arg-type]


def idx(table: str, *columns: str, unique: bool = False) -> DemoIndex:
    suffix = "unique" if unique else "idx"
    return DemoIndex(f"{table}_{'_'.join(columns)}_{suffix}", columns, unique)


LEVEL_0 = (
    t(
        "user",
        "usr",
        300,
        text("firstName", v.first_name, null_rate=0.1),
        text("lastName", v.last_name, null_rate=0.1),
        key_text("email", v.email, 255),
        text("passwordHash", v.paragraph, null_rate=0.2),
        key_text("role", v.choice_of("user", "admin"), 20),
        stamp("emailVerified", null_rate=0.3),
        number("currentCredits", 0, 5000, default="0"),
        text("gender", v.choice_of("female", "male", "non-binary"), null_rate=0.4),
        stamp("dateOfBirth", null_rate=0.3, gen=v.birth_seconds),
        json_text("athleteProfile", v.json_metadata, null_rate=0.5),
        stamp_ms("lastActiveAt", null_rate=0.2),
        indexes=(idx("user", "email", unique=True), idx("user", "role")),
    ),
    t(
        "tag",
        "tag",
        40,
        key_text("name", v.slug, 191),
        text("color", v.choice_of("red", "blue")),
        indexes=(idx("tag", "name", unique=True),),
    ),
    t(
        "entitlement_type",
        "etype",
        10,
        key_text("key", v.slug, 64),
        text("description", v.paragraph),
        indexes=(idx("entitlement_type", "key", unique=True),),
    ),
    t(
        "feature",
        "feat",
        20,
        key_text("key", v.slug, 64),
        text("name", v.title),
        boolean("isActive", default="true"),
        indexes=(idx("feature", "key", unique=True),),
    ),
    t(
        "limit",
        "lmt",
        10,
        key_text("key", v.slug, 64),
        text("name", v.title),
        text("unit", v.choice_of("count", "MB", "seats")),
        indexes=(idx("limit", "key", unique=True),),
    ),
    t(
        "plan",
        "plan",
        6,
        key_text("slug", v.slug, 64),
        text("name", v.title),
        number("priceCents", 0, 99_900),
        boolean("isPublic"),
        boolean("isActive", default="true"),
        json_text("metadata", v.json_metadata),
        indexes=(idx("plan", "slug", unique=True),),
    ),
)

LEVEL_1 = (
    t(
        "team",
        "team",
        80,
        text("name", v.title),
        key_text("slug", v.slug, 191),
        boolean("isPersonalTeam"),
        json_text("settings", v.json_settings, null_rate=0.2),
        ref("currentPlanId", "plan", null_rate=0.3),
        ref("parentTeamId", "team", null_rate=0.8),
        stamp("planExpiresAt", null_rate=0.5),
        number("creditBalance", 0, 100_000, default="0"),
        indexes=(idx("team", "slug", unique=True),),
    ),
    t(
        "passkey_credential",
        "pkey",
        60,
        ref("userId", "user"),
        text("credentialId", v.paragraph),
        DemoColumn("publicKey", "blob", "blob", v.blob),
        number("counter", 0, 900),
        text("transports", v.choice_of("usb", "internal", "hybrid"), null_rate=0.3),
        stamp("lastUsedAt", null_rate=0.4),
        indexes=(idx("passkey_credential", "userId"),),
    ),
    t(
        "plan_feature",
        "",
        40,
        ref("planId", "plan"),
        ref("featureId", "feature"),
        primary_key=("planId", "featureId"),
        versioned=False,
    ),
    t(
        "plan_limit",
        "",
        30,
        ref("planId", "plan"),
        ref("limitId", "limit"),
        number("value", -1, 10_000),
        primary_key=("planId", "limitId"),
        versioned=False,
    ),
    t(
        "affiliate",
        "aff",
        20,
        ref("userId", "user"),
        key_text("code", v.slug, 64),
        real("commissionRate", 0.0, 0.3),
        boolean("isActive", default="true"),
        indexes=(idx("affiliate", "code", unique=True),),
    ),
)


def _team_owned(
    name: str, prefix: str, rows: int, *columns: DemoColumn, unique: tuple[str, ...] = ()
) -> DemoTable:
    """A table every row of which belongs to a team (indexed by teamId)."""
    indexes = (idx(name, "teamId"), *(idx(name, c, unique=True) for c in unique))
    return t(name, prefix, rows, ref("teamId", "team"), *columns, indexes=indexes)


LEVEL_2 = (
    _team_owned(
        "team_membership",
        "tmem",
        200,
        ref("userId", "user"),
        # roleKey, not a team_role FK: the Appendix keeps both at level 2.
        text("roleKey", v.choice_of("owner", "admin", "member")),
        boolean("isActive", default="true"),
        stamp("joinedAt"),
        ref("invitedBy", "user", null_rate=0.5),
    ),
    _team_owned(
        "team_role",
        "trole",
        40,
        text("name", v.title),
        text("description", v.paragraph, null_rate=0.5),
        json_text("permissions", v.json_permissions),
        boolean("isEditable", default="true"),
    ),
    _team_owned(
        "team_invitation",
        "tinv",
        50,
        text("email", v.email),
        key_text("token", v.slug, 191),
        ref("invitedBy", "user"),
        stamp("expiresAt"),
        stamp("acceptedAt", null_rate=0.6),
        unique=("token",),
    ),
    _team_owned(
        "team_subscription",
        "tsub",
        60,
        ref("planId", "plan"),
        text("status", STATUS),
        stamp("currentPeriodStart"),
        stamp("currentPeriodEnd"),
        boolean("cancelAtPeriodEnd"),
    ),
    _team_owned(
        "team_addon",
        "tadd",
        30,
        text("name", v.title),
        number("quantity", 1, 50),
        stamp("expiresAt", null_rate=0.5),
    ),
    _team_owned(
        "team_entitlement_override",
        "tovr",
        20,
        ref("entitlementTypeId", "entitlement_type"),
        text("value", v.slug),
        text("reason", v.paragraph, null_rate=0.5),
        stamp("expiresAt", null_rate=0.5),
    ),
    _team_owned(
        "team_usage",
        "tuse",
        150,
        ref("limitId", "limit"),
        number("value", 0, 100_000),
        stamp("periodStart"),
        stamp("periodEnd"),
    ),
    t(
        "team_feature_entitlement",
        "",
        60,
        ref("teamId", "team"),
        ref("featureId", "feature"),
        boolean("isEnabled", default="true"),
        primary_key=("teamId", "featureId"),
        versioned=False,
    ),
    _team_owned(
        "team_limit_entitlement", "tlim", 60, ref("limitId", "limit"), number("value", -1, 10_000)
    ),
    _team_owned(
        "competition_group",
        "cgrp",
        20,
        text("name", v.title),
        text("description", v.paragraph, null_rate=0.3),
    ),
    _team_owned(
        "programming_track",
        "ptrk",
        25,
        text("name", v.title),
        text("type", v.choice_of("self", "official")),
        boolean("isPublic"),
    ),
    _team_owned("scaling_group", "sgrp", 20, text("title", v.title), boolean("isDefault")),
    _team_owned(
        "location",
        "loc",
        25,
        text("name", v.title),
        text("address", v.paragraph, null_rate=0.2),
        real("latitude", -60.0, 70.0, null_rate=0.2),
        real("longitude", -180.0, 180.0, null_rate=0.2),
    ),
    _team_owned("skill", "skl", 30, text("name", v.title)),
    _team_owned(
        "class_catalog",
        "ccat",
        25,
        text("name", v.title),
        text("description", v.paragraph),
        number("durationMinutes", 15, 120),
        number("maxParticipants", 4, 40),
    ),
    _team_owned(
        "waiver",
        "wvr",
        15,
        text("title", v.title),
        text("content", v.paragraph),
        boolean("isRequired", default="true"),
        number("position", 0, 10),
    ),
    _team_owned(
        "notification",
        "ntf",
        150,
        ref("userId", "user"),
        text("type", v.choice_of("invite", "score", "system")),
        text("message", v.paragraph),
        json_text("data", v.json_metadata, null_rate=0.3),
        boolean("isRead"),
        DemoColumn(
            "sentAt",
            "integer",
            "timestamp_s",
            v.mixed_sent_at,
            True,
            "CURRENT_TIMESTAMP",
            null_rate=0.05,
        ),
    ),
    _team_owned("sponsor_group", "spgr", 15, text("name", v.title), number("position", 0, 10)),
)
