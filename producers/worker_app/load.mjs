#!/usr/bin/env node
// Drive the Worker with a weighted mix of all its write routes at a fixed
// rate, keeping a model of the ids it created (and of what cascades remove
// or a primary-key change renames) so updates and deletes hit live rows.
// Requests touching the same user/team never overlap in flight (per-entity
// locks), so every non-2xx is either the expected failing batch or an error.
//
//   node load.mjs --url http://127.0.0.1:PORT --rate 50 --seconds 10 [--seed 1]
//                 [--max-inflight 256] [--timeout-ms 30000]
// Prints one JSON line:
//   {"requests":n,"ok":n,"failed_expected":n,"errors":n,"p50_ms":x,"p99_ms":y,
//    "by_route":{"POST /users":{"n":..,"ok":..,"failed_expected":..,"errors":..},...},
//    "duration_s":..,"rate_achieved":..,"skipped":..,"error_samples":[...]}
// Exit status 0 when errors == 0, 1 otherwise, 2 on bad arguments.
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";

export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

class Model {
  constructor(rand) {
    this.rand = rand;
    this.users = new Map(); // id -> {email}
    this.teams = new Map(); // id -> {members:Set<userId>, tags:Set<tagId>}
    this.competitions = new Map(); // id -> {teamId, divisionIds}
    this.registrations = new Map(); // id -> {userId, competitionId}
    this.scores = new Map(); // id -> {userId, competitionId}
    this.passkeys = new Map(); // id -> userId
    this.busy = new Set(); // "u:<id>" / "t:<id>"
  }
  pick(map, filter = () => true, tries = 8) {
    if (map.size === 0) return undefined;
    const keys = [...map.keys()];
    for (let i = 0; i < tries; i++) {
      const k = keys[Math.floor(this.rand() * keys.length)];
      if (filter(k, map.get(k))) return k;
    }
    return undefined;
  }
  free(...locks) {
    return locks.every((l) => !this.busy.has(l));
  }
  freeUser(filter = () => true) {
    return this.pick(this.users, (id, v) => this.free(`u:${id}`) && filter(id, v));
  }
  freeTeam(filter = () => true) {
    return this.pick(this.teams, (id, v) => this.free(`t:${id}`) && filter(id, v));
  }
  teamOf(competitionId) {
    return this.competitions.get(competitionId)?.teamId;
  }
  dropUser(id) {
    this.users.delete(id);
    for (const t of this.teams.values()) t.members.delete(id);
    for (const [k, v] of this.registrations) if (v.userId === id) this.registrations.delete(k);
    for (const [k, v] of this.scores) if (v.userId === id) this.scores.delete(k);
    for (const [k, v] of this.passkeys) if (v === id) this.passkeys.delete(k);
  }
  renameUser(oldId, newId) {
    const u = this.users.get(oldId);
    this.users.delete(oldId);
    this.users.set(newId, u);
    for (const t of this.teams.values()) {
      if (t.members.delete(oldId)) t.members.add(newId);
    }
    for (const v of this.registrations.values()) if (v.userId === oldId) v.userId = newId;
    for (const v of this.scores.values()) if (v.userId === oldId) v.userId = newId;
    for (const [k, v] of this.passkeys) if (v === oldId) this.passkeys.set(k, newId);
  }
  dropCompetition(id) {
    this.competitions.delete(id);
    for (const [k, v] of this.registrations) if (v.competitionId === id) this.registrations.delete(k);
    for (const [k, v] of this.scores) if (v.competitionId === id) this.scores.delete(k);
  }
  dropTeam(id) {
    this.teams.delete(id);
    for (const [k, v] of this.competitions) if (v.teamId === id) this.dropCompetition(k);
  }
}

const FIRST = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Zoë", "Renée"];
const LAST = ["Smith", "Nguyen", "García", "O'Brien", "Müller", "Kowalski", "Lee", "Ivanova"];
const TAGS = Array.from({ length: 20 }, (_, i) => `tag-${i}`);
const EVENTS = ["26.1", "26.2", "26.3", "26.4", "26.5"];

/** The operations: weight, route label, and prepare(model) -> request or null. */
export function operations(ctx) {
  const { rand, uniq } = ctx;
  const r = (n) => Math.floor(rand() * n);
  const one = (a) => a[r(a.length)];
  return [
    {
      route: "POST /users",
      weight: 12,
      prepare: (m) => {
        const email = `load-${uniq()}@example.com`;
        return {
          method: "POST",
          path: "/users",
          body: {
            email,
            firstName: one(FIRST),
            lastName: one(LAST),
            gender: one(["male", "female", undefined]),
            dateOfBirth: 315532800 + r(900_000_000),
            athleteProfile: rand() < 0.5 ? { heightCm: 150 + r(50), prs: { clean: 60 + r(100) } } : undefined,
          },
          locks: [],
          ok: (res) => m.users.set(res.id, { email }),
        };
      },
    },
    {
      route: "PATCH /users/:id",
      weight: 10,
      prepare: (m) => {
        const id = m.freeUser();
        if (!id) return null;
        return {
          method: "PATCH",
          path: `/users/${encodeURIComponent(id)}`,
          body: rand() < 0.5 ? { lastName: one(LAST), currentCredits: r(1000) } : { firstName: one(FIRST), isActive: rand() < 0.8 },
          locks: [`u:${id}`],
        };
      },
    },
    {
      route: "POST /raw-update/:id",
      weight: 6,
      prepare: (m) => {
        const id = m.freeUser();
        if (!id) return null;
        return { method: "POST", path: `/raw-update/${encodeURIComponent(id)}`, body: { firstName: one(FIRST), creditsDelta: 1 + r(5) }, locks: [`u:${id}`] };
      },
    },
    {
      route: "POST /users/upsert",
      weight: 5,
      prepare: (m) => {
        const id = rand() < 0.6 ? m.freeUser() : undefined;
        const email = id ? m.users.get(id).email : `upsert-${uniq()}@example.com`;
        return {
          method: "POST",
          path: "/users/upsert",
          body: { email, firstName: one(FIRST), lastName: one(LAST) },
          locks: id ? [`u:${id}`] : [],
          ok: (res) => {
            if (!id) m.users.set(res.id, { email });
          },
        };
      },
    },
    {
      route: "POST /users/:id/rename-id",
      weight: 3,
      prepare: (m) => {
        const id = m.freeUser();
        if (!id) return null;
        return {
          method: "POST",
          path: `/users/${encodeURIComponent(id)}/rename-id`,
          body: {},
          locks: [`u:${id}`],
          ok: (res) => m.renameUser(res.oldId, res.newId),
        };
      },
    },
    {
      route: "DELETE /users/:id",
      weight: 4,
      prepare: (m) => {
        if (m.users.size < 20) return null;
        const id = m.freeUser();
        if (!id) return null;
        return { method: "DELETE", path: `/users/${encodeURIComponent(id)}`, locks: [`u:${id}`], ok: () => m.dropUser(id) };
      },
    },
    {
      route: "POST /users/:id/passkeys",
      weight: 4,
      prepare: (m) => {
        const id = m.freeUser();
        if (!id) return null;
        return {
          method: "POST",
          path: `/users/${encodeURIComponent(id)}/passkeys`,
          body: { size: 16 + r(200) },
          locks: [`u:${id}`],
          ok: (res) => m.passkeys.set(res.id, res.userId),
        };
      },
    },
    {
      route: "DELETE /passkeys/:id",
      weight: 1,
      prepare: (m) => {
        const pk = m.pick(m.passkeys, (_k, uid) => m.free(`u:${uid}`));
        if (!pk) return null;
        const uid = m.passkeys.get(pk);
        return { method: "DELETE", path: `/passkeys/${encodeURIComponent(pk)}`, locks: [`u:${uid}`], ok: () => m.passkeys.delete(pk) };
      },
    },
    {
      route: "POST /teams",
      weight: 5,
      prepare: (m) => {
        const owner = m.freeUser();
        if (!owner) return null;
        const members = new Set();
        for (let i = 0, n = r(4); i < n; i++) {
          const u = m.freeUser((id) => id !== owner);
          if (u) members.add(u);
        }
        return {
          method: "POST",
          path: "/teams",
          body: { name: `Team ${uniq()}`, ownerId: owner, memberIds: [...members], settings: JSON.stringify({ theme: one(["dark", "light"]) }) },
          locks: [owner, ...members].map((u) => `u:${u}`),
          ok: (res) => m.teams.set(res.team.id, { members: new Set([owner, ...members]), tags: new Set() }),
        };
      },
    },
    {
      route: "PATCH /teams/:id",
      weight: 3,
      prepare: (m) => {
        const t = m.freeTeam();
        if (!t) return null;
        return { method: "PATCH", path: `/teams/${encodeURIComponent(t)}`, body: { description: `desc ${uniq()}`, creditBalance: r(10000) }, locks: [`t:${t}`] };
      },
    },
    {
      route: "DELETE /teams/:id",
      weight: 2,
      prepare: (m) => {
        if (m.teams.size < 6) return null;
        const t = m.freeTeam();
        if (!t) return null;
        return { method: "DELETE", path: `/teams/${encodeURIComponent(t)}`, locks: [`t:${t}`], ok: () => m.dropTeam(t) };
      },
    },
    {
      route: "POST /teams/:id/members",
      weight: 4,
      prepare: (m) => {
        const t = m.freeTeam();
        if (!t) return null;
        const team = m.teams.get(t);
        const u = m.freeUser((id) => !team.members.has(id));
        if (!u) return null;
        return {
          method: "POST",
          path: `/teams/${encodeURIComponent(t)}/members`,
          body: { userId: u },
          locks: [`t:${t}`, `u:${u}`],
          ok: () => m.teams.get(t)?.members.add(u),
        };
      },
    },
    {
      route: "DELETE /teams/:id/members/:userId",
      weight: 2,
      prepare: (m) => {
        const t = m.freeTeam((_id, v) => v.members.size > 1);
        if (!t) return null;
        const members = [...m.teams.get(t).members].filter((u) => m.free(`u:${u}`));
        if (members.length === 0) return null;
        const u = one(members);
        return {
          method: "DELETE",
          path: `/teams/${encodeURIComponent(t)}/members/${encodeURIComponent(u)}`,
          locks: [`t:${t}`, `u:${u}`],
          ok: () => m.teams.get(t)?.members.delete(u),
        };
      },
    },
    {
      route: "POST /teams/:id/tags",
      weight: 3,
      prepare: (m) => {
        const t = m.freeTeam();
        if (!t) return null;
        return {
          method: "POST",
          path: `/teams/${encodeURIComponent(t)}/tags`,
          body: { name: one(TAGS), note: rand() < 0.5 ? `note ${uniq()}` : undefined },
          // tags are shared between teams: serialize tag upserts on one lock
          locks: [`t:${t}`, "tags"],
          ok: (res) => m.teams.get(t)?.tags.add(res.tagId),
        };
      },
    },
    {
      route: "DELETE /teams/:id/tags/:tagId",
      weight: 1,
      prepare: (m) => {
        const t = m.freeTeam((_id, v) => v.tags.size > 0);
        if (!t) return null;
        const tag = one([...m.teams.get(t).tags]);
        return {
          method: "DELETE",
          path: `/teams/${encodeURIComponent(t)}/tags/${encodeURIComponent(tag)}`,
          locks: [`t:${t}`, "tags"],
          ok: () => m.teams.get(t)?.tags.delete(tag),
        };
      },
    },
    {
      route: "POST /competitions",
      weight: 3,
      prepare: (m) => {
        const t = m.freeTeam();
        if (!t) return null;
        return {
          method: "POST",
          path: "/competitions",
          body: { teamId: t, name: `Comp ${uniq()}`, groupName: rand() < 0.5 ? `Series ${uniq()}` : undefined, divisions: ["RX", "Scaled", "Masters"].slice(0, 1 + r(3)) },
          locks: [`t:${t}`],
          ok: (res) => m.competitions.set(res.id, { teamId: t, divisionIds: res.divisionIds }),
        };
      },
    },
    {
      route: "PATCH /competitions/:id",
      weight: 2,
      prepare: (m) => {
        const c = m.pick(m.competitions, (_k, v) => m.free(`t:${v.teamId}`));
        if (!c) return null;
        return {
          method: "PATCH",
          path: `/competitions/${encodeURIComponent(c)}`,
          body: { visibility: one(["public", "private"]), settings: { maxAthletes: 100 + r(900), timezone: "UTC" } },
          locks: [`t:${m.teamOf(c)}`],
        };
      },
    },
    {
      route: "DELETE /competitions/:id",
      weight: 2,
      prepare: (m) => {
        if (m.competitions.size < 4) return null;
        const c = m.pick(m.competitions, (_k, v) => m.free(`t:${v.teamId}`));
        if (!c) return null;
        return { method: "DELETE", path: `/competitions/${encodeURIComponent(c)}`, locks: [`t:${m.teamOf(c)}`], ok: () => m.dropCompetition(c) };
      },
    },
    {
      route: "POST /competitions/:id/registrations",
      weight: 5,
      prepare: (m) => {
        const c = m.pick(m.competitions, (_k, v) => m.free(`t:${v.teamId}`));
        if (!c) return null;
        const registered = new Set([...m.registrations.values()].filter((v) => v.competitionId === c).map((v) => v.userId));
        const u = m.freeUser((id) => !registered.has(id));
        if (!u) return null;
        const comp = m.competitions.get(c);
        return {
          method: "POST",
          path: `/competitions/${encodeURIComponent(c)}/registrations`,
          body: { userId: u, divisionId: comp.divisionIds.length ? one(comp.divisionIds) : undefined, teamName: rand() < 0.3 ? `Squad ${uniq()}` : undefined },
          locks: [`t:${comp.teamId}`, `u:${u}`],
          ok: (res) => m.registrations.set(res.id, { userId: u, competitionId: c }),
        };
      },
    },
    {
      route: "PATCH /registrations/:id",
      weight: 2,
      prepare: (m) => {
        const id = m.pick(m.registrations, (_k, v) => m.free(`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`));
        if (!id) return null;
        const v = m.registrations.get(id);
        return {
          method: "PATCH",
          path: `/registrations/${encodeURIComponent(id)}`,
          body: { status: one(["active", "withdrawn", "waitlist"]) },
          locks: [`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`],
        };
      },
    },
    {
      route: "DELETE /registrations/:id",
      weight: 1,
      prepare: (m) => {
        const id = m.pick(m.registrations, (_k, v) => m.free(`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`));
        if (!id) return null;
        const v = m.registrations.get(id);
        return {
          method: "DELETE",
          path: `/registrations/${encodeURIComponent(id)}`,
          locks: [`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`],
          ok: () => m.registrations.delete(id),
        };
      },
    },
    {
      route: "POST /scores",
      weight: 10,
      prepare: (m) => {
        const c = m.pick(m.competitions, (_k, v) => m.free(`t:${v.teamId}`));
        if (!c) return null;
        const u = m.freeUser();
        if (!u) return null;
        return {
          method: "POST",
          path: "/scores",
          body: {
            userId: u,
            competitionId: c,
            eventName: one(EVENTS),
            scoreValue: r(500),
            tieBreak: rand() < 0.5 ? Math.round(rand() * 1e6) / 1000 : undefined,
            status: one(["scored", "scored", "cap", "dnf"]),
            details: rand() < 0.5 ? { reps: [r(30), r(30), r(30)], note: "ok" } : undefined,
          },
          locks: [`t:${m.teamOf(c)}`, `u:${u}`],
          ok: (res) => m.scores.set(res.id, { userId: u, competitionId: c }),
        };
      },
    },
    {
      route: "PATCH /scores/:id",
      weight: 6,
      prepare: (m) => {
        const id = m.pick(m.scores, (_k, v) => m.free(`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`));
        if (!id) return null;
        const v = m.scores.get(id);
        return {
          method: "PATCH",
          path: `/scores/${encodeURIComponent(id)}`,
          body: rand() < 0.7 ? { scoreValue: r(500) } : { isVerified: true },
          locks: [`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`],
        };
      },
    },
    {
      route: "DELETE /scores/:id",
      weight: 2,
      prepare: (m) => {
        const id = m.pick(m.scores, (_k, v) => m.free(`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`));
        if (!id) return null;
        const v = m.scores.get(id);
        return {
          method: "DELETE",
          path: `/scores/${encodeURIComponent(id)}`,
          locks: [`u:${v.userId}`, `t:${m.teamOf(v.competitionId)}`],
          ok: () => m.scores.delete(id),
        };
      },
    },
    {
      route: "POST /failing-batch",
      weight: 2,
      prepare: () => ({
        method: "POST",
        path: "/failing-batch",
        body: { mode: rand() < 0.5 ? "unique" : "foreign_key" },
        locks: [],
        expectFailure: (status, res) => status === 409 && res?.error === "batch_failed" && res?.rolledBack === true,
      }),
    },
  ];
}

function usage(msg) {
  if (msg) process.stderr.write(`load: ${msg}\n`);
  process.stderr.write("usage: node load.mjs --url U --rate R --seconds S [--seed N] [--max-inflight 256] [--timeout-ms 30000]\n");
  process.exit(2);
}

async function main() {
  let a;
  try {
    a = parseArgs({
      options: {
        url: { type: "string" },
        rate: { type: "string", default: "50" },
        seconds: { type: "string", default: "10" },
        seed: { type: "string", default: "1" },
        "max-inflight": { type: "string", default: "256" },
        "timeout-ms": { type: "string", default: "30000" },
      },
      strict: true,
    }).values;
  } catch (err) {
    usage(err.message);
  }
  if (!a.url) usage("--url is required");
  const base = a.url.replace(/\/+$/, "");
  const rate = Number(a.rate);
  const seconds = Number(a.seconds);
  const seed = Number(a.seed);
  const maxInflight = Number(a["max-inflight"]);
  const timeoutMs = Number(a["timeout-ms"]);
  if (!(rate > 0) || !(seconds > 0) || !Number.isInteger(seed) || !(maxInflight > 0)) usage("bad numbers");

  const rand = mulberry32(seed);
  let counter = 0;
  const runTag = `${seed}-${Date.now().toString(36)}`;
  const uniq = () => `${runTag}-${++counter}`;
  const model = new Model(rand);
  const ops = operations({ rand, uniq });
  const totalWeight = ops.reduce((s, o) => s + o.weight, 0);
  const byRoute = {};
  for (const o of ops) byRoute[o.route] = { n: 0, ok: 0, failed_expected: 0, errors: 0 };
  const latencies = [];
  const errorSamples = [];
  let requests = 0, ok = 0, failedExpected = 0, errors = 0, skipped = 0, inflight = 0;

  const choose = () => {
    for (let i = 0; i < 12; i++) {
      let x = rand() * totalWeight;
      let op = ops[0];
      for (const o of ops) {
        x -= o.weight;
        if (x < 0) { op = o; break; }
      }
      const req = op.prepare(model);
      if (req) return { op, req };
    }
    const op = ops[0]; // POST /users is always possible
    return { op, req: op.prepare(model) };
  };

  const fire = async () => {
    if (inflight >= maxInflight) { skipped++; return; }
    const { op, req } = choose();
    for (const l of req.locks) model.busy.add(l);
    inflight++;
    requests++;
    const stat = byRoute[op.route];
    stat.n++;
    const t0 = performance.now();
    let status = 0, body = null, text = "";
    try {
      const res = await fetch(base + req.path, {
        method: req.method,
        headers: req.body ? { "content-type": "application/json" } : {},
        body: req.body ? JSON.stringify(req.body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      text = await res.text();
      try { body = JSON.parse(text); } catch { body = null; }
    } catch (err) {
      text = String(err?.message ?? err);
    }
    latencies.push(performance.now() - t0);
    try {
      if (status >= 200 && status < 300 && !req.expectFailure) {
        ok++; stat.ok++;
        if (req.ok) req.ok(body);
      } else if (req.expectFailure && req.expectFailure(status, body)) {
        failedExpected++; stat.failed_expected++;
      } else {
        errors++; stat.errors++;
        if (errorSamples.length < 10) errorSamples.push({ route: op.route, path: req.path, status, body: text.slice(0, 300) });
      }
    } finally {
      for (const l of req.locks) model.busy.delete(l);
      inflight--;
    }
  };

  const started = performance.now();
  const total = Math.round(rate * seconds);
  const pending = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(fire());
  }
  await Promise.all(pending);
  const duration = (performance.now() - started) / 1000;
  latencies.sort((x, y) => x - y);
  const round = (x) => Math.round(x * 100) / 100;
  const out = {
    requests,
    ok,
    failed_expected: failedExpected,
    errors,
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    by_route: byRoute,
    duration_s: round(duration),
    rate_achieved: round(requests / duration),
    skipped,
    seed,
    model: {
      users: model.users.size,
      teams: model.teams.size,
      competitions: model.competitions.size,
      registrations: model.registrations.size,
      scores: model.scores.size,
      passkeys: model.passkeys.size,
    },
    error_samples: errorSamples,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(errors === 0 ? 0 : 1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`load: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
