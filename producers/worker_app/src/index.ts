// The Worker: JSON HTTP routes writing to D1 through Drizzle.
// Module syntax; env.DB is the D1 binding. Everything goes through
// drizzle(env.DB) so $defaultFn/$onUpdate behave as in the user's app,
// except POST /raw-update/:id, which is raw SQL on purpose.
import { and, count, eq, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import {
  HttpError,
  decodeBase64,
  errorResponse,
  json,
  optBool,
  optDate,
  optInt,
  optNumber,
  optString,
  optStringArray,
  readJsonObject,
  reqString,
  slugify,
} from "./http";
import {
  createCompetitionDivisionId,
  createCompetitionGroupId,
  createCompetitionId,
  createTeamId,
  createTeamMembershipId,
  createTeamRoleId,
  createUserId,
  randomBody,
} from "./ids";
import { Router, type Params } from "./router";
import { chunk, rowsPerStatement } from "./chunk";
import * as schema from "./schema";
import {
  competitionDivisionTable,
  competitionGroupTable,
  competitionRegistrationTable,
  competitionTable,
  passKeyCredentialTable,
  scoreAuditLogTable,
  scoreTable,
  tagTable,
  teamMembershipTable,
  teamRoleTable,
  teamTable,
  teamTagTable,
  userTable,
  type AthleteProfile,
  type CompetitionSettings,
} from "./schema";

export interface Env {
  DB: D1Database;
}

type Db = DrizzleD1Database<typeof schema>;
type Ctx = { db: Db; request: Request; url: URL };

export function getDb(env: Env): Db {
  if (!env.DB) throw new Error('D1 database binding "DB" not found.');
  return drizzle(env.DB, { schema, casing: "snake_case" });
}

type Batch = Readonly<[BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]>;
function asBatch(items: BatchItem<"sqlite">[]): Batch {
  if (items.length === 0) throw new Error("empty batch");
  return items as unknown as Batch;
}

function param(params: Params, name: string): string {
  const v = params[name];
  if (v === undefined) throw new HttpError(400, "missing_param", `missing :${name}`);
  return v;
}

function optJsonObject<T>(body: Record<string, unknown>, key: string): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new HttpError(400, "bad_field", `${key} must be a JSON object`);
  }
  return v as T;
}

function pickEnum<T extends string>(body: Record<string, unknown>, key: string, values: readonly T[]): T | undefined {
  const v = optString(body, key, 50);
  if (v === undefined) return undefined;
  if (!(values as readonly string[]).includes(v)) {
    throw new HttpError(400, "bad_field", `${key} must be one of ${values.join(", ")}`);
  }
  return v as T;
}

function notFound(what: string, id: string): never {
  throw new HttpError(404, "not_found", `${what} ${id} not found`);
}

/** Drop undefined values so a PATCH only sets what was sent. */
function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

function requireSome(patch: Record<string, unknown>): void {
  if (Object.keys(patch).length === 0) throw new HttpError(400, "empty_patch", "nothing to update");
}

const DAY = 86_400_000;

// Users ------------------------------------------------------------------

function userFields(body: Record<string, unknown>) {
  return defined({
    firstName: optString(body, "firstName", 255),
    lastName: optString(body, "lastName", 255),
    email: optString(body, "email", 255),
    passwordHash: optString(body, "passwordHash", 1000),
    role: pickEnum(body, "role", ["admin", "user"] as const),
    emailVerified: optDate(body, "emailVerified"),
    currentCredits: optInt(body, "currentCredits"),
    isActive: optBool(body, "isActive"),
    gender: pickEnum(body, "gender", ["male", "female"] as const),
    dateOfBirth: optDate(body, "dateOfBirth"),
    athleteProfile: optJsonObject<AthleteProfile>(body, "athleteProfile"),
  });
}

async function createUser({ db, request }: Ctx): Promise<Response> {
  const body = await readJsonObject(request);
  const id = optString(body, "id", 100);
  const [user] = await db
    .insert(userTable)
    .values({ ...userFields(body), ...(id ? { id } : {}) })
    .returning();
  return json(user, 201);
}

async function getUser({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const user = await db.query.userTable.findFirst({ where: eq(userTable.id, id) });
  if (!user) notFound("user", id);
  const { passwordHash: _ignored, ...rest } = user;
  return json(rest);
}

async function patchUser({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const patch = userFields(await readJsonObject(request));
  requireSome(patch);
  const [user] = await db.update(userTable).set(patch).where(eq(userTable.id, id)).returning();
  if (!user) notFound("user", id);
  return json(user);
}

async function deleteUser({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const rows = await db.delete(userTable).where(eq(userTable.id, id)).returning({ id: userTable.id });
  if (rows.length === 0) notFound("user", id);
  return json({ deleted: id });
}

/** Insert-or-update by email through onConflictDoUpdate. */
async function upsertUser({ db, request }: Ctx): Promise<Response> {
  const body = await readJsonObject(request);
  const email = reqString(body, "email", 255);
  const firstName = optString(body, "firstName", 255);
  const lastName = optString(body, "lastName", 255);
  const athleteProfile = optJsonObject<AthleteProfile>(body, "athleteProfile");
  const [user] = await db
    .insert(userTable)
    .values({ email, firstName, lastName, athleteProfile })
    .onConflictDoUpdate({
      target: userTable.email,
      set: defined({
        firstName,
        lastName,
        athleteProfile,
        updatedAt: new Date(),
        updateCounter: sql`${userTable.updateCounter} + 1`,
      }),
    })
    .returning();
  return json(user);
}

/** Raw SQL through db.run(sql``): updated_at and update_counter stay as they were. */
async function rawUpdateUser({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const body = await readJsonObject(request);
  const firstName = optString(body, "firstName", 255) ?? null;
  const delta = optInt(body, "creditsDelta") ?? 1;
  const result = await db.run(
    sql`UPDATE user SET first_name = coalesce(${firstName}, first_name), current_credits = current_credits + ${delta} WHERE id = ${id}`,
  );
  const changes = result.meta.changes ?? 0;
  if (changes === 0) notFound("user", id);
  return json({ id, changes });
}

/** Primary-key change; children follow through ON UPDATE CASCADE. */
async function renameUserId({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const body = await readJsonObject(request);
  const newId = optString(body, "newId", 100) ?? createUserId();
  const rows = await db
    .update(userTable)
    .set({ id: newId })
    .where(eq(userTable.id, id))
    .returning({ id: userTable.id });
  if (rows.length === 0) notFound("user", id);
  return json({ oldId: id, newId });
}

async function addPasskey({ db, request }: Ctx, p: Params): Promise<Response> {
  const userId = param(p, "id");
  const body = await readJsonObject(request);
  const b64 = optString(body, "publicKey", 1_000_000);
  let bytes: Uint8Array;
  if (b64 !== undefined) {
    bytes = decodeBase64(b64, "publicKey");
  } else {
    bytes = new Uint8Array(optInt(body, "size") ?? 77);
    crypto.getRandomValues(bytes);
  }
  const [row] = await db
    .insert(passKeyCredentialTable)
    .values({
      userId,
      credentialId: optString(body, "credentialId", 255) ?? `cred_${randomBody(32)}`,
      credentialPublicKey: Buffer.from(bytes),
      transports: optStringArray(body, "transports") ?? ["internal", "hybrid"],
    })
    .returning({ id: passKeyCredentialTable.id, userId: passKeyCredentialTable.userId });
  return json({ ...row, size: bytes.length }, 201);
}

async function deletePasskey({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const rows = await db
    .delete(passKeyCredentialTable)
    .where(eq(passKeyCredentialTable.id, id))
    .returning({ id: passKeyCredentialTable.id });
  if (rows.length === 0) notFound("passkey", id);
  return json({ deleted: id });
}

// Teams ------------------------------------------------------------------

/** Team + its two roles + its memberships in one db.batch (all or nothing). */
async function createTeam({ db, request }: Ctx): Promise<Response> {
  const body = await readJsonObject(request);
  const name = reqString(body, "name", 255);
  const memberIds = [...new Set(optStringArray(body, "memberIds") ?? [])];
  if (memberIds.length > 500) throw new HttpError(400, "bad_field", "at most 500 memberIds");
  const ownerId = optString(body, "ownerId", 100);
  const teamId = optString(body, "id", 100) ?? createTeamId();
  const ownerRoleId = createTeamRoleId();
  const memberRoleId = createTeamRoleId();
  const now = new Date();
  const items: BatchItem<"sqlite">[] = [
    db
      .insert(teamTable)
      .values({
        id: teamId,
        name,
        slug: `${slugify(name)}-${randomBody(8)}`,
        description: optString(body, "description", 1000),
        settings: optString(body, "settings", 10000),
        isPersonalTeam: optBool(body, "isPersonalTeam") ?? false,
        personalTeamOwnerId: ownerId,
      })
      .returning(),
    db.insert(teamRoleTable).values([
      { id: ownerRoleId, teamId, name: "owner", permissions: ["*"], isEditable: false },
      {
        id: memberRoleId,
        teamId,
        name: "member",
        permissions: ["read", "register", "score:submit"],
        metadata: JSON.stringify({ color: "#3366ff" }),
      },
    ]),
  ];
  const all = ownerId && !memberIds.includes(ownerId) ? [ownerId, ...memberIds] : memberIds;
  const memberships = all.map((userId) => ({
    id: createTeamMembershipId(),
    teamId,
    userId,
    roleId: userId === ownerId ? ownerRoleId : memberRoleId,
    isSystemRole: true,
    joinedAt: now,
    invitedBy: userId === ownerId ? null : ownerId ?? null,
  }));
  // D1 allows 100 bound parameters per statement: chunk like the app's autochunk
  for (const part of chunk(memberships, rowsPerStatement(12))) {
    items.push(db.insert(teamMembershipTable).values(part));
  }
  const [teamRows] = (await db.batch(asBatch(items))) as unknown as [unknown[]];
  return json(
    {
      team: teamRows[0],
      roles: [ownerRoleId, memberRoleId],
      memberships: memberships.map((m) => ({ id: m.id, userId: m.userId })),
    },
    201,
  );
}

async function getTeam({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const [team, members, roles, tags] = await db.batch([
    db.select().from(teamTable).where(eq(teamTable.id, id)),
    db.select().from(teamMembershipTable).where(eq(teamMembershipTable.teamId, id)),
    db.select().from(teamRoleTable).where(eq(teamRoleTable.teamId, id)),
    db.select().from(teamTagTable).where(eq(teamTagTable.teamId, id)),
  ]);
  if (team.length === 0) notFound("team", id);
  return json({ team: team[0], members, roles, tags });
}

async function patchTeam({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const body = await readJsonObject(request);
  const patch = defined({
    name: optString(body, "name", 255),
    description: optString(body, "description", 1000),
    settings: optString(body, "settings", 10000),
    creditBalance: optInt(body, "creditBalance"),
  });
  requireSome(patch);
  const [team] = await db.update(teamTable).set(patch).where(eq(teamTable.id, id)).returning();
  if (!team) notFound("team", id);
  return json(team);
}

/** Delete a team; team_membership, team_role, team_tag, competitions... cascade. */
async function deleteTeam({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const [members, deleted] = await db.batch([
    db.select({ n: count() }).from(teamMembershipTable).where(eq(teamMembershipTable.teamId, id)),
    db.delete(teamTable).where(eq(teamTable.id, id)).returning({ id: teamTable.id }),
  ]);
  if (deleted.length === 0) notFound("team", id);
  return json({ deleted: id, membershipsCascaded: members[0]?.n ?? 0 });
}

async function addMember({ db, request }: Ctx, p: Params): Promise<Response> {
  const teamId = param(p, "id");
  const body = await readJsonObject(request);
  const userId = reqString(body, "userId", 100);
  const role = await db
    .select({ id: teamRoleTable.id })
    .from(teamRoleTable)
    .where(and(eq(teamRoleTable.teamId, teamId), eq(teamRoleTable.name, "member")));
  const [row] = await db
    .insert(teamMembershipTable)
    .values({
      teamId,
      userId,
      roleId: optString(body, "roleId", 100) ?? role[0]?.id ?? "member",
      isSystemRole: role.length > 0,
      joinedAt: new Date(),
      expiresAt: optDate(body, "expiresAt"),
    })
    .returning();
  return json(row, 201);
}

async function removeMember({ db }: Ctx, p: Params): Promise<Response> {
  const teamId = param(p, "id");
  const userId = param(p, "userId");
  const rows = await db
    .delete(teamMembershipTable)
    .where(and(eq(teamMembershipTable.teamId, teamId), eq(teamMembershipTable.userId, userId)))
    .returning({ id: teamMembershipTable.id });
  if (rows.length === 0) notFound("membership", `${teamId}/${userId}`);
  return json({ deleted: rows[0]?.id });
}

/** Upsert a tag by name and attach it to the team (composite-key row), in one batch. */
async function tagTeam({ db, request }: Ctx, p: Params): Promise<Response> {
  const teamId = param(p, "id");
  const body = await readJsonObject(request);
  const name = reqString(body, "name", 100);
  const note = optString(body, "note", 255) ?? null;
  const [tags] = await db.batch([
    db
      .insert(tagTable)
      .values({ name, color: optString(body, "color", 7) })
      .onConflictDoUpdate({
        target: tagTable.name,
        set: { useCount: sql`${tagTable.useCount} + 1`, updatedAt: new Date(), updateCounter: sql`${tagTable.updateCounter} + 1` },
      })
      .returning({ id: tagTable.id }),
    db
      .insert(teamTagTable)
      .values({ teamId, tagId: sql`(SELECT id FROM tag WHERE name = ${name})`, note })
      .onConflictDoUpdate({
        target: [teamTagTable.teamId, teamTagTable.tagId],
        set: { note, updatedAt: new Date(), updateCounter: sql`${teamTagTable.updateCounter} + 1` },
      }),
  ]);
  return json({ teamId, tagId: tags[0]?.id, name }, 201);
}

async function untagTeam({ db }: Ctx, p: Params): Promise<Response> {
  const teamId = param(p, "id");
  const tagId = param(p, "tagId");
  const rows = await db
    .delete(teamTagTable)
    .where(and(eq(teamTagTable.teamId, teamId), eq(teamTagTable.tagId, tagId)))
    .returning({ tagId: teamTagTable.tagId });
  if (rows.length === 0) notFound("team_tag", `${teamId}/${tagId}`);
  return json({ deleted: { teamId, tagId } });
}

// Competitions -----------------------------------------------------------

async function createCompetition({ db, request }: Ctx): Promise<Response> {
  const body = await readJsonObject(request);
  const teamId = reqString(body, "teamId", 100);
  const name = reqString(body, "name", 255);
  const groupName = optString(body, "groupName", 255);
  const divisions = optStringArray(body, "divisions") ?? ["RX", "Scaled"];
  if (divisions.length > 100) throw new HttpError(400, "bad_field", "at most 100 divisions");
  const start = optDate(body, "startDate") ?? new Date(Date.now() + 30 * DAY);
  const end = optDate(body, "endDate") ?? new Date(start.getTime() + 2 * DAY);
  const id = createCompetitionId();
  const groupId = groupName ? createCompetitionGroupId() : undefined;
  const items: BatchItem<"sqlite">[] = [];
  if (groupId && groupName) {
    items.push(
      db.insert(competitionGroupTable).values({
        id: groupId,
        organizingTeamId: teamId,
        slug: `${slugify(groupName)}-${randomBody(6)}`,
        name: groupName,
      }),
    );
  }
  items.push(
    db.insert(competitionTable).values({
      id,
      organizingTeamId: teamId,
      groupId,
      slug: `${slugify(name)}-${randomBody(8)}`,
      name,
      description: optString(body, "description", 2000),
      startDate: start,
      endDate: end,
      registrationOpensAt: new Date(start.getTime() - 14 * DAY),
      settings: optJsonObject<CompetitionSettings>(body, "settings") ?? { divisions, timezone: "UTC" },
      visibility: pickEnum(body, "visibility", ["public", "private"] as const),
    }),
  );
  const divisionRows = divisions.map((label, i) => ({
    id: createCompetitionDivisionId(),
    competitionId: id,
    label,
    maxSpots: 50 + 10 * i,
    feeCents: 2500 * (i + 1),
  }));
  for (const part of chunk(divisionRows, rowsPerStatement(8))) {
    items.push(db.insert(competitionDivisionTable).values(part));
  }
  await db.batch(asBatch(items));
  return json({ id, groupId: groupId ?? null, divisionIds: divisionRows.map((d) => d.id) }, 201);
}

async function patchCompetition({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const body = await readJsonObject(request);
  const patch = defined({
    name: optString(body, "name", 255),
    description: optString(body, "description", 2000),
    visibility: pickEnum(body, "visibility", ["public", "private"] as const),
    settings: optJsonObject<CompetitionSettings>(body, "settings"),
    startDate: optDate(body, "startDate"),
  });
  requireSome(patch);
  const [row] = await db.update(competitionTable).set(patch).where(eq(competitionTable.id, id)).returning();
  if (!row) notFound("competition", id);
  return json(row);
}

async function deleteCompetition({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const rows = await db.delete(competitionTable).where(eq(competitionTable.id, id)).returning({ id: competitionTable.id });
  if (rows.length === 0) notFound("competition", id);
  return json({ deleted: id });
}

async function register({ db, request }: Ctx, p: Params): Promise<Response> {
  const eventId = param(p, "id");
  const body = await readJsonObject(request);
  const [row] = await db
    .insert(competitionRegistrationTable)
    .values({
      eventId,
      userId: reqString(body, "userId", 100),
      divisionId: optString(body, "divisionId", 100),
      teamName: optString(body, "teamName", 255),
      registeredAt: new Date(),
      metadata: optJsonObject<Record<string, unknown>>(body, "metadata") ?? { source: "worker_app" },
    })
    .returning();
  return json(row, 201);
}

async function patchRegistration({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const body = await readJsonObject(request);
  const patch = defined({
    status: pickEnum(body, "status", ["active", "withdrawn", "waitlist"] as const),
    teamName: optString(body, "teamName", 255),
  });
  requireSome(patch);
  const [row] = await db
    .update(competitionRegistrationTable)
    .set(patch)
    .where(eq(competitionRegistrationTable.id, id))
    .returning();
  if (!row) notFound("registration", id);
  return json(row);
}

async function deleteRegistration({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const rows = await db
    .delete(competitionRegistrationTable)
    .where(eq(competitionRegistrationTable.id, id))
    .returning({ id: competitionRegistrationTable.id });
  if (rows.length === 0) notFound("registration", id);
  return json({ deleted: id });
}

// Scores -----------------------------------------------------------------

const SCORE_STATUS = ["scored", "dnf", "dns", "cap"] as const;

/** Upsert on (competition_id, user_id, event_name) plus an audit row, in one batch. */
async function upsertScore({ db, request }: Ctx): Promise<Response> {
  const body = await readJsonObject(request);
  const userId = reqString(body, "userId", 100);
  const competitionId = reqString(body, "competitionId", 100);
  const eventName = reqString(body, "eventName", 255);
  const scoreValue = optInt(body, "scoreValue");
  if (scoreValue === undefined) throw new HttpError(400, "missing_field", "scoreValue is required");
  const tieBreak = optNumber(body, "tieBreak") ?? null;
  const status = pickEnum(body, "status", SCORE_STATUS) ?? "scored";
  const details = optJsonObject<{ reps?: number[]; note?: string }>(body, "details") ?? null;
  const now = new Date();
  const [scores] = await db.batch([
    db
      .insert(scoreTable)
      .values({ userId, competitionId, eventName, scoreValue, tieBreak, status, details, scoredAt: now })
      .onConflictDoUpdate({
        target: [scoreTable.competitionId, scoreTable.userId, scoreTable.eventName],
        set: { scoreValue, tieBreak, status, details, scoredAt: now, updatedAt: now, updateCounter: sql`${scoreTable.updateCounter} + 1` },
      })
      .returning(),
    db.insert(scoreAuditLogTable).values({
      scoreId: sql`(SELECT id FROM score WHERE competition_id = ${competitionId} AND user_id = ${userId} AND event_name = ${eventName})`,
      action: "create",
      newValue: scoreValue,
      changedAt: now,
    }),
  ]);
  return json(scores[0], 201);
}

async function patchScore({ db, request }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const body = await readJsonObject(request);
  const patch = defined({
    scoreValue: optInt(body, "scoreValue"),
    tieBreak: optNumber(body, "tieBreak"),
    status: pickEnum(body, "status", SCORE_STATUS),
    isVerified: optBool(body, "isVerified"),
  });
  requireSome(patch);
  const action = patch.isVerified ? "verify" : "update";
  const newValue = patch.scoreValue ?? null;
  const [, rows] = await db.batch([
    // INSERT ... SELECT: the audit row keeps the old value, and is a no-op
    // when the score does not exist (then the update returns no row: 404).
    db.insert(scoreAuditLogTable).select(
      db
        .select({
          id: sql<number | null>`NULL`.as("id"),
          scoreId: scoreTable.id,
          action: sql<"update" | "verify">`${action}`.as("action"),
          oldValue: scoreTable.scoreValue,
          newValue: sql<number>`coalesce(${newValue}, ${scoreTable.scoreValue})`.as("new_value"),
          changedAt: sql<Date>`unixepoch()`.as("changed_at"),
        })
        .from(scoreTable)
        .where(eq(scoreTable.id, id)),
    ),
    db.update(scoreTable).set(patch).where(eq(scoreTable.id, id)).returning(),
  ]);
  if (rows.length === 0) notFound("score", id);
  return json(rows[0]);
}

async function deleteScore({ db }: Ctx, p: Params): Promise<Response> {
  const id = param(p, "id");
  const rows = await db.delete(scoreTable).where(eq(scoreTable.id, id)).returning({ id: scoreTable.id });
  if (rows.length === 0) notFound("score", id);
  return json({ deleted: id });
}

// The failing batch --------------------------------------------------------

/**
 * A db.batch whose last statement fails, so none of it commits. Markers:
 * user first_name "failing-batch", team/tag names starting "failing-batch".
 * mode "unique" (default): the same user id twice; "foreign_key": a
 * membership pointing at a team that does not exist.
 */
async function failingBatch({ db, request }: Ctx): Promise<Response> {
  const body = await readJsonObject(request);
  const mode = pickEnum(body, "mode", ["unique", "foreign_key"] as const) ?? "unique";
  const tag = randomBody(10);
  const userId = createUserId();
  const teamId = createTeamId();
  const items: BatchItem<"sqlite">[] = [
    db.insert(userTable).values({ id: userId, email: `failing-batch-${tag}@example.invalid`, firstName: "failing-batch" }),
    db.insert(teamTable).values({ id: teamId, name: `failing-batch ${tag}`, slug: `failing-batch-${tag}` }),
    db.insert(tagTable).values({ name: `failing-batch-${tag}` }),
  ];
  if (mode === "unique") {
    items.push(db.insert(userTable).values({ id: userId, email: `failing-batch-${tag}-2@example.invalid`, firstName: "failing-batch" }));
  } else {
    items.push(
      db.insert(teamMembershipTable).values({ teamId: `team_missing${tag}`, userId, roleId: "member" }),
    );
  }
  try {
    await db.batch(asBatch(items));
  } catch (err) {
    const res = errorResponse(err);
    const detail = (await res.json()) as { message?: string };
    return json(
      { error: "batch_failed", rolledBack: true, mode, message: detail.message ?? "", markers: { userId, teamId, tag } },
      409,
    );
  }
  return json({ error: "batch_unexpectedly_succeeded", mode, markers: { userId, teamId, tag } }, 500);
}

// Reads ------------------------------------------------------------------

const COUNTED = {
  user: userTable,
  tag: tagTable,
  team: teamTable,
  passkey_credential: passKeyCredentialTable,
  team_membership: teamMembershipTable,
  team_role: teamRoleTable,
  team_tag: teamTagTable,
  competition_group: competitionGroupTable,
  competition: competitionTable,
  competition_division: competitionDivisionTable,
  competition_registration: competitionRegistrationTable,
  score: scoreTable,
  score_audit_log: scoreAuditLogTable,
} as const;

async function stats({ db }: Ctx): Promise<Response> {
  const names = Object.keys(COUNTED) as (keyof typeof COUNTED)[];
  const queries = names.map((n) => db.select({ n: count() }).from(COUNTED[n]));
  const results = (await db.batch(asBatch(queries))) as unknown as { n: number }[][];
  const counts: Record<string, number> = {};
  names.forEach((n, i) => (counts[n] = results[i]?.[0]?.n ?? 0));
  return json({ counts });
}

async function health({ db }: Ctx): Promise<Response> {
  const r = await db.get<{ fk: number }>(sql`SELECT 1 AS fk`);
  return json({ ok: r?.fk === 1 });
}

// Routing ------------------------------------------------------------------

export const router = new Router<Ctx>()
  .get("/health", health)
  .get("/stats", stats)
  .post("/users", createUser)
  .post("/users/upsert", upsertUser)
  .get("/users/:id", getUser)
  .patch("/users/:id", patchUser)
  .delete("/users/:id", deleteUser)
  .post("/users/:id/rename-id", renameUserId)
  .post("/users/:id/passkeys", addPasskey)
  .delete("/passkeys/:id", deletePasskey)
  .post("/raw-update/:id", rawUpdateUser)
  .post("/teams", createTeam)
  .get("/teams/:id", getTeam)
  .patch("/teams/:id", patchTeam)
  .delete("/teams/:id", deleteTeam)
  .post("/teams/:id/members", addMember)
  .delete("/teams/:id/members/:userId", removeMember)
  .post("/teams/:id/tags", tagTeam)
  .delete("/teams/:id/tags/:tagId", untagTeam)
  .post("/competitions", createCompetition)
  .patch("/competitions/:id", patchCompetition)
  .delete("/competitions/:id", deleteCompetition)
  .post("/competitions/:id/registrations", register)
  .patch("/registrations/:id", patchRegistration)
  .delete("/registrations/:id", deleteRegistration)
  .post("/scores", upsertScore)
  .patch("/scores/:id", patchScore)
  .delete("/scores/:id", deleteScore)
  .post("/failing-batch", failingBatch);

export async function handle(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const m = router.match(request.method, url.pathname);
  if (m.kind === "not_found") return json({ error: "not_found", message: `no route ${url.pathname}` }, 404);
  if (m.kind === "method_not_allowed") {
    return json({ error: "method_not_allowed", message: `allowed: ${m.allowed.join(", ")}` }, 405, {
      allow: m.allowed.join(", "),
    });
  }
  try {
    return await m.handler({ db: getDb(env), request, url }, m.params);
  } catch (err) {
    const res = errorResponse(err);
    if (res.status >= 500) console.error(`${request.method} ${url.pathname}:`, err);
    return res;
  }
}

export default {
  fetch(request: Request, env: Env): Promise<Response> {
    return handle(request, env);
  },
} satisfies ExportedHandler<Env>;
