// Applying a migrations folder to a D1 database handle (Miniflare's
// Node-side D1Database, or anything with prepare().run() and batch()).
// Shared by harness.mjs; pure functions are unit-tested in test/migrate.test.ts.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

export const BREAKPOINT = "--> statement-breakpoint";
export const MIGRATIONS_TABLE = "d1_migrations";

/** True when a chunk has something besides whitespace and `--` comment lines. */
export function hasSql(stmt) {
  return stmt
    .split("\n")
    .some((line) => line.trim() !== "" && !line.trim().startsWith("--"));
}

const TRIGGER_START = /^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b/i;
const TRIGGER_END = /\bEND\s*;\s*$/i;

/** Drop comment-only lines at the top so TRIGGER_START sees the statement. */
function leadingCode(text) {
  return text
    .split("\n")
    .filter((l) => !l.trim().startsWith("--"))
    .join("\n");
}

/**
 * Split a migration file into statements.
 * - drizzle-kit files: on the `--> statement-breakpoint` markers.
 * - any other file: a statement ends at a line ending with `;`, except inside
 *   CREATE TRIGGER, which ends at a line ending with `END;` (so one-line and
 *   multi-line triggers both work).
 * Comment-only chunks are dropped; statements keep their trailing `;` off.
 */
export function splitStatements(text) {
  const src = text.replace(/\r\n/g, "\n");
  let chunks;
  if (src.includes(BREAKPOINT)) {
    chunks = src.split(BREAKPOINT);
  } else {
    chunks = [];
    let cur = [];
    for (const line of src.split("\n")) {
      cur.push(line);
      const joined = cur.join("\n");
      const trimmed = line.trimEnd();
      if (!trimmed.endsWith(";") || trimmed.trimStart().startsWith("--")) continue;
      if (TRIGGER_START.test(leadingCode(joined)) && !TRIGGER_END.test(trimmed)) continue;
      chunks.push(joined);
      cur = [];
    }
    if (cur.length > 0) chunks.push(cur.join("\n"));
  }
  return chunks
    .map((c) => c.trim())
    .filter(hasSql)
    .map((c) => {
      // drop a final `;` (and trailing comment lines after it are already split off)
      return c.replace(/;\s*$/, "");
    });
}

/** The .sql files of a folder, in name order (0000_..., 0001_..., 0009_d1cdc_capture.sql). */
export async function listMigrationFiles(dir) {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".sql")).sort();
  return names.map((n) => path.join(dir, n));
}

/**
 * Apply every file not yet recorded in d1_migrations (wrangler's table and
 * layout, so wrangler and this harness agree). Each file runs as one
 * db.batch together with its d1_migrations row: all of it or none of it.
 * Returns the names applied.
 */
export async function applyMigrations(db, dir, { log = () => {} } = {}) {
  await db
    .prepare(
      `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE}(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT UNIQUE,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
)`,
    )
    .run();
  const done = await db.prepare(`SELECT name FROM ${MIGRATIONS_TABLE}`).all();
  const applied = new Set((done.results ?? []).map((r) => r.name));
  const out = [];
  for (const file of await listMigrationFiles(dir)) {
    const name = path.basename(file);
    if (applied.has(name)) continue;
    const statements = splitStatements(await readFile(file, "utf8"));
    const stmts = statements.map((s) => db.prepare(s));
    stmts.push(db.prepare(`INSERT INTO ${MIGRATIONS_TABLE} (name) VALUES (?)`).bind(name));
    try {
      await db.batch(stmts);
    } catch (err) {
      // Say which statement failed: re-run one by one is not possible (the
      // batch rolled back and later statements depend on earlier ones), so
      // report the file and the error.
      throw new Error(`migration ${name} failed: ${err?.message ?? err}`, { cause: err });
    }
    log(`applied ${name} (${statements.length} statements)`);
    out.push(name);
  }
  return out;
}
