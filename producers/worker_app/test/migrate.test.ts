import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { BREAKPOINT, listMigrationFiles, splitStatements } from "../migrate.mjs";

test("drizzle-kit files split on statement-breakpoint", () => {
  const text = `CREATE TABLE a (\n\tid text\n);\n${BREAKPOINT}\nCREATE INDEX i ON a (id);${BREAKPOINT}\nCREATE TABLE b (id text);\n`;
  assert.deepEqual(splitStatements(text), ["CREATE TABLE a (\n\tid text\n)", "CREATE INDEX i ON a (id)", "CREATE TABLE b (id text)"]);
});

test("the committed init migration splits into its statements", async () => {
  const text = await readFile(new URL("../migrations/0000_init.sql", import.meta.url), "utf8");
  const stmts = splitStatements(text);
  assert.equal(stmts.filter((s) => s.startsWith("CREATE TABLE")).length, 13);
  assert.ok(stmts.every((s) => !s.includes(BREAKPOINT)));
});

test("other files split on lines ending with ';', one-line triggers stay whole", () => {
  const text = [
    "-- d1cdc capture triggers",
    "CREATE TABLE IF NOT EXISTS _cdc_log (seq INTEGER PRIMARY KEY, t TEXT);",
    "CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN INSERT INTO _cdc_log (t) VALUES ('a'); END;",
    "CREATE TRIGGER a_del AFTER DELETE ON a BEGIN INSERT INTO _cdc_log (t) VALUES ('a'); INSERT INTO _cdc_log (t) VALUES ('b'); END;",
    "",
  ].join("\n");
  assert.deepEqual(splitStatements(text), [
    "-- d1cdc capture triggers\nCREATE TABLE IF NOT EXISTS _cdc_log (seq INTEGER PRIMARY KEY, t TEXT)",
    "CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN INSERT INTO _cdc_log (t) VALUES ('a'); END",
    "CREATE TRIGGER a_del AFTER DELETE ON a BEGIN INSERT INTO _cdc_log (t) VALUES ('a'); INSERT INTO _cdc_log (t) VALUES ('b'); END",
  ]);
});

test("multi-line triggers are kept until END;", () => {
  const text = [
    "CREATE TRIGGER t_upd AFTER UPDATE ON t",
    "BEGIN",
    "  INSERT INTO log VALUES (1);",
    "  INSERT INTO log VALUES (2);",
    "END;",
    "CREATE INDEX x ON t (a);",
  ].join("\n");
  const stmts = splitStatements(text);
  assert.equal(stmts.length, 2);
  assert.match(stmts[0] ?? "", /^CREATE TRIGGER t_upd[\s\S]*END$/);
  assert.equal(stmts[1], "CREATE INDEX x ON t (a)");
});

test("comment-only chunks and a missing final ';' are handled", () => {
  assert.deepEqual(splitStatements("-- nothing\n\n"), []);
  assert.deepEqual(splitStatements("SELECT 1;\n-- trailing comment\n"), ["SELECT 1"]);
  assert.deepEqual(splitStatements("SELECT 1;\nSELECT 2"), ["SELECT 1", "SELECT 2"]);
  assert.deepEqual(splitStatements("SELECT 1;\r\nSELECT 2;\r\n"), ["SELECT 1", "SELECT 2"]);
});

test("listMigrationFiles returns .sql files in name order", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "mig-"));
  for (const n of ["0009_d1cdc_capture.sql", "0000_init.sql", "0001_b.sql", "notes.txt"]) await writeFile(path.join(dir, n), "");
  const files = (await listMigrationFiles(dir)).map((f: string) => path.basename(f));
  assert.deepEqual(files, ["0000_init.sql", "0001_b.sql", "0009_d1cdc_capture.sql"]);
});
