#!/usr/bin/env node
// Run the bundled Worker (dist/index.js) in workerd through Miniflare, with a
// persisted D1 database, apply the migrations, serve HTTP, and print ONE JSON
// line on stdout when ready (`d1_api`: a D1 HTTP query API served by workerd's D1):
//   {"url": "http://127.0.0.1:PORT", "d1_file": "/abs/.../<64 hex>.sqlite", ...}
// Everything else (workerd output, logs) goes to stderr. SIGTERM/SIGINT:
// mf.dispose() and exit 0.
//
//   node harness.mjs --persist <dir> [--port N] [--host H]
//                    [--migrations <dir>] [--no-migrate] [--script dist/index.js]
//                    [--exit-with-stdin]   (also shut down when stdin reaches EOF)
import { existsSync } from "node:fs";
import http from "node:http";
import { mkdir, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { applyMigrations } from "./migrate.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const D1_ID = "d1cdc-worker-app";
export const COMPATIBILITY_DATE = "2026-04-26";
const D1_DIR = "miniflare-D1DatabaseObject";

function usage(msg) {
  if (msg) process.stderr.write(`harness: ${msg}\n`);
  process.stderr.write(
    "usage: node harness.mjs --persist <dir> [--port N] [--host 127.0.0.1] [--migrations <dir>] [--no-migrate] [--script <file>] [--exit-with-stdin]\n",
  );
  process.exit(2);
}

const log = (m) => process.stderr.write(`harness: ${m}\n`);

async function sqliteFiles(persist) {
  const dir = path.join(persist, D1_DIR);
  if (!existsSync(dir)) return [];
  const names = (await readdir(dir)).filter((n) => n.endsWith(".sqlite") && n !== "metadata.sqlite");
  const out = [];
  for (const n of names) {
    const p = path.join(dir, n);
    out.push({ path: p, mtime: (await stat(p)).mtimeMs });
  }
  return out.sort((a, b) => b.mtime - a.mtime);
}

async function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        persist: { type: "string" },
        port: { type: "string", default: "0" },
        host: { type: "string", default: "127.0.0.1" },
        migrations: { type: "string", default: path.join(HERE, "migrations") },
        "no-migrate": { type: "boolean", default: false },
        "exit-with-stdin": { type: "boolean", default: false },
        script: { type: "string", default: path.join(HERE, "dist", "index.js") },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    usage(err.message);
  }
  if (args.help) usage();
  if (!args.persist) usage("--persist <dir> is required");
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad --port ${args.port}`);
  const persist = path.resolve(args.persist);
  const script = path.resolve(args.script);
  if (!existsSync(script)) usage(`${script} missing: run \`npm run build\` (or bash ops/worker_app.sh setup)`);
  const migrations = path.resolve(args.migrations);
  if (!args["no-migrate"] && !existsSync(migrations)) usage(`migrations folder ${migrations} missing`);
  await mkdir(persist, { recursive: true });

  const t0 = performance.now();
  const before = new Set((await sqliteFiles(persist)).map((f) => f.path));
  const signals = ["SIGTERM", "SIGINT"];
  const prior = Object.fromEntries(signals.map((s) => [s, new Set(process.listeners(s))]));
  const mf = new Miniflare({
    modules: true,
    scriptPath: script,
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags: ["nodejs_compat"],
    d1Databases: { DB: D1_ID },
    d1Persist: persist,
    host: args.host,
    port,
    handleRuntimeStdio(stdout, stderr) {
      stdout.pipe(process.stderr);
      stderr.pipe(process.stderr);
    },
  });

  // Miniflare's exit hook answers SIGTERM/SIGINT by killing workerd and
  // exiting 143/130 at once; take those listeners off so the signal goes
  // through mf.dispose() and exit 0 (its "exit" hook stays as a fallback).
  for (const s of signals) {
    for (const l of process.listeners(s)) if (!prior[s].has(l)) process.removeListener(s, l);
  }
  let disposing = null;
  const shutdown = (signal) => {
    if (disposing) return;
    log(`${signal}: disposing`);
    disposing = mf
      .dispose()
      .then(() => process.exit(0))
      .catch((err) => {
        log(`dispose failed: ${err?.stack ?? err}`);
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  if (args["exit-with-stdin"]) {
    // for a parent that may die without signalling: stdin EOF = shut down
    process.stdin.on("end", () => shutdown("stdin closed"));
    process.stdin.on("error", () => shutdown("stdin error"));
    process.stdin.resume();
  }

  const url = await mf.ready;
  const db = await mf.getD1Database("DB");
  let applied = [];
  if (args["no-migrate"]) {
    await db.prepare("SELECT 1").run(); // creates the .sqlite file
  } else {
    applied = await applyMigrations(db, migrations, { log });
  }
  const files = await sqliteFiles(persist);
  const fresh = files.filter((f) => !before.has(f.path));
  const chosen = fresh[0] ?? files[0];
  if (!chosen) throw new Error(`no D1 .sqlite under ${path.join(persist, D1_DIR)}`);
  if (files.length > 1) log(`warning: ${files.length} D1 files under ${persist}; using ${chosen.path}`);

  const base = url.origin.replace("localhost", "127.0.0.1");
  const d1Api = await serveD1Api(db, args.host);
  process.stdout.write(
    JSON.stringify({
      url: base,
      d1_api: d1Api,
      d1_file: chosen.path,
      persist,
      migrations_applied: applied,
      startup_ms: Math.round(performance.now() - t0),
      pid: process.pid,
    }) + "\n",
  );
}

// Cloudflare's D1 HTTP query API, answered by workerd's own D1 (the Node-side binding):
// POST /client/v4/accounts/<any>/d1/database/<any>/query {"sql", "params"}. d1cdc's
// relay and `capture install` use it as they use the real API, so every write to the
// database goes through the one D1 object, as in production; writing the .sqlite file
// from another process instead races workerd's writers (SQLITE_BUSY in the Worker).
async function serveD1Api(db, host) {
  const route = /^\/client\/v4\/accounts\/[^/]+\/d1\/database\/[^/]+\/query$/;
  const server = http.createServer(async (req, res) => {
    const answer = (status, body) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method !== "POST" || !route.test(req.url ?? "")) {
      answer(404, { success: false, errors: [{ code: 7000, message: "no such route" }], result: [] });
      return;
    }
    let raw = "";
    for await (const chunk of req) raw += chunk;
    try {
      const { sql, params = [] } = JSON.parse(raw);
      const result = await db.prepare(sql).bind(...params).all();
      const rows = (result.results ?? []).map((row) =>
        Object.fromEntries(
          Object.entries(row).map(([k, v]) => [
            k,
            v instanceof ArrayBuffer ? Array.from(new Uint8Array(v))
              : ArrayBuffer.isView(v) ? Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
              : v,
          ]),
        ),
      );
      answer(200, {
        success: true,
        errors: [],
        messages: [],
        result: [{ results: rows, success: true, meta: result.meta ?? {} }],
      });
    } catch (err) {
      answer(400, { success: false, errors: [{ code: 7500, message: String(err?.message ?? err) }], result: [] });
    }
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${server.address().port}/client/v4`;
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exit(1);
});
