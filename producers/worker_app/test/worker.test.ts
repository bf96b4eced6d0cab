// The bundled Worker (dist/index.js, built by `npm test`) in workerd through
// Miniflare, with the committed migrations plus an extra capture-style file
// of one-line triggers, as harness.mjs does it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { copyFile, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Readable } from "node:stream";
import { Miniflare } from "miniflare";
import { applyMigrations } from "../migrate.mjs";

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
let mf: Miniflare;
let db: D1Database;
let tmp: string;

const CAPTURE = [
  "CREATE TABLE IF NOT EXISTS _test_capture (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, pk TEXT);",
  "CREATE TRIGGER _test_user_upd AFTER UPDATE ON user BEGIN INSERT INTO _test_capture (tbl, op, pk) VALUES ('user', 'U', NEW.id); END;",
  "CREATE TRIGGER _test_tm_del AFTER DELETE ON team_membership BEGIN INSERT INTO _test_capture (tbl, op, pk) VALUES ('team_membership', 'D', OLD.id); END;",
  "CREATE TRIGGER _test_tm_upd AFTER UPDATE ON team_membership BEGIN INSERT INTO _test_capture (tbl, op, pk) VALUES ('team_membership', 'U', NEW.id); END;",
  "",
].join("\n");

async function call(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await mf.dispatchFetch(`http://localhost${p}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function one<T = Record<string, unknown>>(sql: string, ...binds: unknown[]): Promise<T | null> {
  return db.prepare(sql).bind(...binds).first<T>();
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "worker-app-test-"));
  const migrations = path.join(tmp, "migrations");
  await rm(migrations, { recursive: true, force: true });
  await (await import("node:fs/promises")).mkdir(migrations);
  for (const n of await readdir(path.join(ROOT, "migrations"))) {
    // drizzle-kit's migrations only: this test installs its own capture file below
    if (n.endsWith(".sql") && !n.includes("d1cdc_capture")) {
      await copyFile(path.join(ROOT, "migrations", n), path.join(migrations, n));
    }
  }
  await writeFile(path.join(migrations, "0009_d1cdc_capture.sql"), CAPTURE);
  mf = new Miniflare({
    modules: true,
    scriptPath: path.join(ROOT, "dist", "index.js"),
    compatibilityDate: "2026-04-26",
    compatibilityFlags: ["nodejs_compat"],
    d1Databases: { DB: "d1cdc-worker-app" },
    d1Persist: path.join(tmp, "persist"),
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      stdout.resume();
      stderr.pipe(process.stderr);
    },
  });
  db = await mf.getD1Database("DB");
  const applied = await applyMigrations(db, migrations);
  assert.deepEqual(applied, ["0000_init.sql", "0009_d1cdc_capture.sql"]);
  assert.deepEqual(await applyMigrations(db, migrations), [], "second run applies nothing");
});

after(async () => {
  await mf?.dispose();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test("health, and D1 enforces foreign keys", async () => {
  assert.deepEqual(await call("GET", "/health"), { status: 200, json: { ok: true } });
  const fk = await one<{ foreign_keys: number }>("PRAGMA foreign_keys");
  assert.equal(fk?.foreign_keys, 1);
});

test("PATCH goes through $onUpdate; raw-update leaves updated_at/update_counter alone", async () => {
  const created = await call("POST", "/users", { email: "onupdate@example.com", firstName: "A", athleteProfile: { heightCm: 170 } });
  assert.equal(created.status, 201);
  const id: string = created.json.id;
  assert.match(id, /^usr_/);
  assert.equal(created.json.updateCounter, 0);
  await db.prepare("UPDATE user SET updated_at = 1000 WHERE id = ?").bind(id).run();

  const patched = await call("PATCH", `/users/${id}`, { lastName: "B" });
  assert.equal(patched.status, 200);
  assert.equal(patched.json.updateCounter, 1);
  const row1 = await one<{ updated_at: number; update_counter: number; athlete_profile: string }>(
    "SELECT updated_at, update_counter, athlete_profile FROM user WHERE id = ?", id);
  assert.ok((row1?.updated_at ?? 0) > 1_700_000_000, "updated_at bumped, in seconds");
  assert.equal(row1?.update_counter, 1);
  assert.deepEqual(JSON.parse(row1?.athlete_profile ?? "null"), { heightCm: 170 });

  await db.prepare("UPDATE user SET updated_at = 1000 WHERE id = ?").bind(id).run();
  const raw = await call("POST", `/raw-update/${id}`, { firstName: "Raw" });
  assert.equal(raw.status, 200);
  // D1's meta.changes counts trigger writes too: 1 row + 1 capture row.
  assert.deepEqual(raw.json, { id, changes: 2 });
  const row2 = await one<{ updated_at: number; update_counter: number; first_name: string; current_credits: number }>(
    "SELECT updated_at, update_counter, first_name, current_credits FROM user WHERE id = ?", id);
  assert.deepEqual(row2, { updated_at: 1000, update_counter: 1, first_name: "Raw", current_credits: 1 });

  assert.equal((await call("PATCH", "/users/usr_missing", { lastName: "x" })).status, 404);
  assert.equal((await call("POST", "/raw-update/usr_missing", {})).status, 404);
});

test("upsert inserts then updates by email", async () => {
  const a = await call("POST", "/users/upsert", { email: "up@example.com", firstName: "One" });
  const b = await call("POST", "/users/upsert", { email: "up@example.com", firstName: "Two" });
  assert.equal(a.json.id, b.json.id);
  assert.equal(b.json.firstName, "Two");
  assert.equal(b.json.updateCounter, 1);
  const dup = await call("POST", "/users", { email: "up@example.com" });
  assert.equal(dup.status, 409);
});

test("team batch, pk rename cascading to children, team delete cascading", async () => {
  const owner = (await call("POST", "/users", { email: "owner@example.com" })).json.id as string;
  const member = (await call("POST", "/users", { email: "member@example.com" })).json.id as string;
  const team = await call("POST", "/teams", { name: "Cascade Team", ownerId: owner, memberIds: [member] });
  assert.equal(team.status, 201);
  const teamId: string = team.json.team.id;
  assert.equal(team.json.memberships.length, 2);
  const comp = await call("POST", "/competitions", { teamId, name: "Open", groupName: "Series" });
  assert.equal(comp.status, 201);
  const score = await call("POST", "/scores", { userId: member, competitionId: comp.json.id, eventName: "26.1", scoreValue: 10 });
  assert.equal(score.status, 201);
  const pk = await call("POST", `/users/${member}/passkeys`, { publicKey: Buffer.from([0, 1, 2, 255]).toString("base64") });
  assert.equal(pk.status, 201);

  const renamed = await call("POST", `/users/${member}/rename-id`, { newId: "usr_renamedmember000000000" });
  assert.deepEqual(renamed, { status: 200, json: { oldId: member, newId: "usr_renamedmember000000000" } });
  const newId = "usr_renamedmember000000000";
  assert.equal((await one<{ n: number }>("SELECT count(*) AS n FROM team_membership WHERE user_id = ?", newId))?.n, 1);
  assert.equal((await one<{ n: number }>("SELECT count(*) AS n FROM score WHERE user_id = ?", newId))?.n, 1);
  const key = await one<{ k: ArrayBuffer | number[] }>("SELECT credential_public_key AS k FROM passkey_credential WHERE user_id = ?", newId);
  assert.deepEqual([...new Uint8Array(key?.k as ArrayBuffer)], [0, 1, 2, 255]);
  // the cascaded update of team_membership.user_id fired its trigger
  const cascUpd = await one<{ n: number }>("SELECT count(*) AS n FROM _test_capture WHERE tbl = 'team_membership' AND op = 'U'");
  assert.equal(cascUpd?.n, 1);

  const del = await call("DELETE", `/teams/${teamId}`);
  assert.deepEqual(del, { status: 200, json: { deleted: teamId, membershipsCascaded: 2 } });
  for (const t of ["team_membership", "team_role", "competition", "competition_group", "competition_division", "score", "score_audit_log"]) {
    assert.equal((await one<{ n: number }>(`SELECT count(*) AS n FROM ${t}`))?.n, 0, t);
  }
  const cascDel = await one<{ n: number }>("SELECT count(*) AS n FROM _test_capture WHERE tbl = 'team_membership' AND op = 'D'");
  assert.equal(cascDel?.n, 2, "cascade deletes fire triggers");
});

test("a failing batch commits nothing", async () => {
  const before = await call("GET", "/stats");
  for (const mode of ["unique", "foreign_key"]) {
    const res = await call("POST", "/failing-batch", { mode });
    assert.equal(res.status, 409);
    assert.equal(res.json.error, "batch_failed");
    assert.equal(res.json.rolledBack, true);
    assert.equal(await one("SELECT id FROM user WHERE id = ?", res.json.markers.userId), null);
    assert.equal(await one("SELECT id FROM team WHERE id = ?", res.json.markers.teamId), null);
  }
  const afterStats = await call("GET", "/stats");
  assert.deepEqual(afterStats.json, before.json);
});

test("routing errors are JSON", async () => {
  assert.equal((await call("GET", "/nope")).status, 404);
  assert.equal((await call("PUT", "/health")).status, 405);
  const bad = await mf.dispatchFetch("http://localhost/users", { method: "POST", body: "{bad" });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: string }).error, "bad_json");
  assert.equal((await call("POST", "/teams/team_missing/members", { userId: "usr_missing" })).status, 409);
});

test("a team with 30 members is chunked under D1's parameter limit and commits whole", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) ids.push((await call("POST", "/users", { email: `bulk${i}@example.com` })).json.id);
  const team = await call("POST", "/teams", { name: "Bulk", ownerId: ids[0], memberIds: ids.slice(1) });
  assert.equal(team.status, 201);
  assert.equal(team.json.memberships.length, 30);
  const n = await one<{ n: number }>("SELECT count(*) AS n FROM team_membership WHERE team_id = ?", team.json.team.id);
  assert.equal(n?.n, 30);
  // one unknown member: the whole batch (team, roles, memberships) rolls back
  const bad = await call("POST", "/teams", { id: "team_bulkbad000000000000000", name: "Bulk bad", memberIds: [...ids, "usr_nobody"] });
  assert.equal(bad.status, 409);
  assert.equal(await one("SELECT id FROM team WHERE id = 'team_bulkbad000000000000000'"), null);
  assert.equal((await one<{ n: number }>("SELECT count(*) AS n FROM team_role WHERE team_id = 'team_bulkbad000000000000000'"))?.n, 0);
});
