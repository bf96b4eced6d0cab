import assert from "node:assert/strict";
import { test } from "node:test";
import {
  HttpError,
  classifyDbError,
  decodeBase64,
  encodeBase64,
  errorResponse,
  optDate,
  optInt,
  readJsonObject,
  slugify,
} from "../src/http.ts";

test("D1 constraint errors are classified through Drizzle's cause chain", () => {
  const d1 = new Error("D1_ERROR: UNIQUE constraint failed: user.email: SQLITE_CONSTRAINT");
  const wrapped = new Error("Failed query: insert into user ...", { cause: d1 });
  assert.equal(classifyDbError(wrapped).kind, "unique");
  assert.match(classifyDbError(wrapped).detail, /^UNIQUE constraint failed: user\.email/);
  assert.equal(classifyDbError(new Error("x", { cause: new Error("PRIMARY KEY constraint failed") })).kind, "unique");
  assert.equal(classifyDbError(new Error("FOREIGN KEY constraint failed: SQLITE_CONSTRAINT")).kind, "foreign_key");
  assert.equal(classifyDbError(new Error("NOT NULL constraint failed: team.name")).kind, "not_null");
  assert.equal(classifyDbError(new Error("boom")).kind, "other");
  assert.equal(classifyDbError("string thrown").kind, "other");
});

test("errorResponse maps to statuses", async () => {
  assert.equal(errorResponse(new HttpError(404, "not_found", "x")).status, 404);
  assert.equal(errorResponse(new Error("UNIQUE constraint failed: tag.name")).status, 409);
  assert.equal(errorResponse(new Error("FOREIGN KEY constraint failed")).status, 409);
  assert.equal(errorResponse(new Error("NOT NULL constraint failed: a.b")).status, 422);
  const res = errorResponse(new Error("kaput"));
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: "internal", message: "kaput" });
});

test("readJsonObject accepts objects and empty bodies only", async () => {
  const req = (body: string) => new Request("http://x/", { method: "POST", body });
  assert.deepEqual(await readJsonObject(req("")), {});
  assert.deepEqual(await readJsonObject(req('{"a":1}')), { a: 1 });
  for (const bad of ["[1]", "null", "3", "{bad"]) {
    await assert.rejects(readJsonObject(req(bad)), (e: unknown) => e instanceof HttpError && e.status === 400);
  }
});

test("field validators", () => {
  assert.equal(optInt({ n: 3 }, "n"), 3);
  assert.equal(optInt({}, "n"), undefined);
  assert.throws(() => optInt({ n: 1.5 }, "n"), HttpError);
  assert.throws(() => optInt({ n: "1" }, "n"), HttpError);
  assert.equal(optDate({ d: 86400 }, "d")?.toISOString(), "1970-01-02T00:00:00.000Z");
  assert.equal(optDate({ d: "2026-01-01T00:00:00Z" }, "d")?.getTime(), Date.UTC(2026, 0, 1));
  assert.throws(() => optDate({ d: "not a date" }, "d"), HttpError);
});

test("base64 round-trips bytes including 0x00 and 0xff, and rejects junk", () => {
  const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
  assert.deepEqual(decodeBase64(encodeBase64(bytes)), bytes);
  assert.deepEqual(decodeBase64("AAH_"), new Uint8Array([0, 1, 255]));
  assert.throws(() => decodeBase64("a b"), HttpError);
});

test("slugify", () => {
  assert.equal(slugify("Team One!"), "team-one");
  assert.equal(slugify("Café Über"), "cafe-uber");
  assert.equal(slugify("!!!"), "x");
});
