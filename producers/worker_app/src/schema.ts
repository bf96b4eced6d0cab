// Drizzle schema (sqlite-core) for a slice of the user's app, in their style:
// text ids with prefixes, integer({ mode: "timestamp" }) (seconds),
// integer({ mode: "boolean" }), text({ mode: "json" }), commonColumns with
// $defaultFn/$onUpdate. Column names come from the keys through
// casing: "snake_case" (drizzle.config.ts and drizzle(env.DB, { casing })).
//
// Dependency levels (as in the user's migration order):
//   0: user, tag
//   1: team, passkey_credential
//   2: team_membership, team_role, team_tag (composite PK), competition_group
//   3: competition
//   4: competition_division
//   5: competition_registration
//   6: score, score_audit_log
import { sql } from "drizzle-orm";
import {
  blob,
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";
import {
  createCompetitionDivisionId,
  createCompetitionGroupId,
  createCompetitionId,
  createCompetitionRegistrationId,
  createPasskeyId,
  createScoreId,
  createTagId,
  createTeamId,
  createTeamMembershipId,
  createTeamRoleId,
  createUserId,
} from "./ids";

export const commonColumns = {
  createdAt: integer({ mode: "timestamp" })
    .$defaultFn(() => new Date())
    .notNull(),
  updatedAt: integer({ mode: "timestamp" })
    .$defaultFn(() => new Date())
    .$onUpdateFn(() => new Date())
    .notNull(),
  updateCounter: integer()
    .default(0)
    .$onUpdate(() => sql`update_counter + 1`),
};

// Level 0 -------------------------------------------------------------------

export type AthleteProfile = {
  heightCm?: number;
  weightKg?: number;
  affiliate?: string;
  prs?: Record<string, number>;
};

export const userTable = sqliteTable(
  "user",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createUserId())
      .notNull(),
    firstName: text({ length: 255 }),
    lastName: text({ length: 255 }),
    email: text({ length: 255 }).unique(),
    passwordHash: text(),
    role: text({ enum: ["admin", "user"] }).default("user").notNull(),
    emailVerified: integer({ mode: "timestamp" }),
    currentCredits: integer().default(0).notNull(),
    isActive: integer({ mode: "boolean" }).default(true).notNull(),
    gender: text({ enum: ["male", "female"] }),
    dateOfBirth: integer({ mode: "timestamp" }),
    athleteProfile: text({ mode: "json" }).$type<AthleteProfile>(),
  },
  (table) => [
    index("email_idx").on(table.email),
    index("role_idx").on(table.role),
  ],
);

export const tagTable = sqliteTable("tag", {
  ...commonColumns,
  id: text()
    .primaryKey()
    .$defaultFn(() => createTagId())
    .notNull(),
  name: text({ length: 100 }).notNull().unique(),
  color: text({ length: 7 }),
  useCount: integer().default(0).notNull(),
});

// Level 1 -------------------------------------------------------------------

export const teamTable = sqliteTable(
  "team",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createTeamId())
      .notNull(),
    name: text({ length: 255 }).notNull(),
    slug: text({ length: 255 }).notNull().unique(),
    description: text({ length: 1000 }),
    settings: text({ length: 10000 }),
    isPersonalTeam: integer({ mode: "boolean" }).default(false).notNull(),
    personalTeamOwnerId: text().references(() => userTable.id, {
      onDelete: "set null",
      onUpdate: "cascade",
    }),
    creditBalance: integer().default(0).notNull(),
  },
  (table) => [index("team_slug_idx").on(table.slug)],
);

export const passKeyCredentialTable = sqliteTable(
  "passkey_credential",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createPasskeyId())
      .notNull(),
    userId: text()
      .notNull()
      .references(() => userTable.id, { onDelete: "cascade", onUpdate: "cascade" }),
    credentialId: text({ length: 255 }).notNull().unique(),
    credentialPublicKey: blob({ mode: "buffer" }).notNull(),
    counter: integer().default(0).notNull(),
    transports: text({ mode: "json" }).$type<string[]>(),
    lastUsedAt: integer({ mode: "timestamp" }),
  },
  (table) => [index("passkey_user_idx").on(table.userId)],
);

// Level 2 -------------------------------------------------------------------

export const teamMembershipTable = sqliteTable(
  "team_membership",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createTeamMembershipId())
      .notNull(),
    teamId: text()
      .notNull()
      .references(() => teamTable.id, { onDelete: "cascade" }),
    userId: text()
      .notNull()
      .references(() => userTable.id, { onDelete: "cascade", onUpdate: "cascade" }),
    roleId: text().notNull(),
    isSystemRole: integer({ mode: "boolean" }).default(true).notNull(),
    invitedBy: text().references(() => userTable.id, {
      onDelete: "set null",
      onUpdate: "cascade",
    }),
    joinedAt: integer({ mode: "timestamp" }),
    expiresAt: integer({ mode: "timestamp" }),
    isActive: integer({ mode: "boolean" }).default(true).notNull(),
  },
  (table) => [
    index("membership_team_idx").on(table.teamId),
    index("membership_user_idx").on(table.userId),
    uniqueIndex("membership_team_user_unique").on(table.teamId, table.userId),
  ],
);

export const teamRoleTable = sqliteTable(
  "team_role",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createTeamRoleId())
      .notNull(),
    teamId: text()
      .notNull()
      .references(() => teamTable.id, { onDelete: "cascade" }),
    name: text({ length: 255 }).notNull(),
    description: text({ length: 1000 }),
    permissions: text({ mode: "json" }).notNull().$type<string[]>(),
    metadata: text({ length: 5000 }),
    isEditable: integer({ mode: "boolean" }).default(true).notNull(),
  },
  (table) => [uniqueIndex("team_role_name_unique").on(table.teamId, table.name)],
);

/** Composite primary key (team_id, tag_id). */
export const teamTagTable = sqliteTable(
  "team_tag",
  {
    ...commonColumns,
    teamId: text()
      .notNull()
      .references(() => teamTable.id, { onDelete: "cascade" }),
    tagId: text()
      .notNull()
      .references(() => tagTable.id, { onDelete: "cascade" }),
    note: text({ length: 255 }),
  },
  (table) => [primaryKey({ columns: [table.teamId, table.tagId] })],
);

export const competitionGroupTable = sqliteTable(
  "competition_group",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createCompetitionGroupId())
      .notNull(),
    organizingTeamId: text()
      .notNull()
      .references(() => teamTable.id, { onDelete: "cascade" }),
    slug: text({ length: 255 }).notNull(),
    name: text({ length: 255 }).notNull(),
    description: text({ length: 2000 }),
  },
  (table) => [
    uniqueIndex("comp_group_slug_team_idx").on(table.organizingTeamId, table.slug),
  ],
);

// Level 3 -------------------------------------------------------------------

export type CompetitionSettings = {
  divisions?: string[];
  maxAthletes?: number;
  timezone?: string;
};

export const competitionTable = sqliteTable(
  "competition",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createCompetitionId())
      .notNull(),
    organizingTeamId: text()
      .notNull()
      .references(() => teamTable.id, { onDelete: "cascade" }),
    groupId: text().references(() => competitionGroupTable.id, { onDelete: "set null" }),
    slug: text({ length: 255 }).notNull().unique(),
    name: text({ length: 255 }).notNull(),
    description: text({ length: 2000 }),
    startDate: integer({ mode: "timestamp" }).notNull(),
    endDate: integer({ mode: "timestamp" }).notNull(),
    registrationOpensAt: integer({ mode: "timestamp" }),
    settings: text({ mode: "json" }).$type<CompetitionSettings>(),
    visibility: text({ enum: ["public", "private"] }).default("public").notNull(),
  },
  (table) => [
    index("competition_team_idx").on(table.organizingTeamId),
    index("competition_group_idx").on(table.groupId),
  ],
);

// Level 4 -------------------------------------------------------------------

export const competitionDivisionTable = sqliteTable("competition_division", {
  ...commonColumns,
  id: text()
    .primaryKey()
    .$defaultFn(() => createCompetitionDivisionId())
    .notNull(),
  competitionId: text()
    .notNull()
    .references(() => competitionTable.id, { onDelete: "cascade" }),
  label: text({ length: 255 }).notNull(),
  maxSpots: integer(),
  feeCents: integer().default(0).notNull(),
});

// Level 5 -------------------------------------------------------------------

export const competitionRegistrationTable = sqliteTable(
  "competition_registration",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createCompetitionRegistrationId())
      .notNull(),
    eventId: text()
      .notNull()
      .references(() => competitionTable.id, { onDelete: "cascade" }),
    userId: text()
      .notNull()
      .references(() => userTable.id, { onDelete: "cascade", onUpdate: "cascade" }),
    divisionId: text().references(() => competitionDivisionTable.id, {
      onDelete: "set null",
    }),
    teamName: text({ length: 255 }),
    registeredAt: integer({ mode: "timestamp" }).notNull(),
    status: text({ enum: ["active", "withdrawn", "waitlist"] }).default("active").notNull(),
    metadata: text({ mode: "json" }).$type<Record<string, unknown>>(),
  },
  (table) => [
    uniqueIndex("comp_reg_event_user_idx").on(table.eventId, table.userId),
    index("comp_reg_user_idx").on(table.userId),
  ],
);

// Level 6 -------------------------------------------------------------------

export const scoreTable = sqliteTable(
  "score",
  {
    ...commonColumns,
    id: text()
      .primaryKey()
      .$defaultFn(() => createScoreId())
      .notNull(),
    userId: text()
      .notNull()
      .references(() => userTable.id, { onDelete: "cascade", onUpdate: "cascade" }),
    competitionId: text()
      .notNull()
      .references(() => competitionTable.id, { onDelete: "cascade" }),
    eventName: text({ length: 255 }).notNull(),
    scoreValue: integer().notNull(),
    tieBreak: real(),
    status: text({ enum: ["scored", "dnf", "dns", "cap"] }).default("scored").notNull(),
    isVerified: integer({ mode: "boolean" }).default(false).notNull(),
    scoredAt: integer({ mode: "timestamp" }).notNull(),
    details: text({ mode: "json" }).$type<{ reps?: number[]; note?: string }>(),
  },
  (table) => [
    uniqueIndex("score_comp_user_event_idx").on(
      table.competitionId,
      table.userId,
      table.eventName,
    ),
    index("score_user_idx").on(table.userId),
  ],
);

/** Integer autoincrement primary key, for variety. */
export const scoreAuditLogTable = sqliteTable("score_audit_log", {
  id: integer().primaryKey({ autoIncrement: true }),
  scoreId: text()
    .notNull()
    .references(() => scoreTable.id, { onDelete: "cascade" }),
  action: text({ enum: ["create", "update", "verify"] }).notNull(),
  oldValue: integer(),
  newValue: integer(),
  changedAt: integer({ mode: "timestamp" })
    .$defaultFn(() => new Date())
    .notNull(),
});
