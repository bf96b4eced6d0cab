import assert from "node:assert/strict";
import { test } from "node:test";
import { Router, matchPath, splitPath } from "../src/router.ts";

test("splitPath ignores empty segments", () => {
  assert.deepEqual(splitPath("/users//abc/"), ["users", "abc"]);
  assert.deepEqual(splitPath("/"), []);
});

test("matchPath extracts and decodes params", () => {
  assert.deepEqual(matchPath("/users/:id", "/users/usr_abc"), { id: "usr_abc" });
  assert.deepEqual(matchPath("/teams/:id/members/:userId", "/teams/t%2F1/members/u%20x"), { id: "t/1", userId: "u x" });
  assert.equal(matchPath("/users/:id", "/users"), null);
  assert.equal(matchPath("/users/:id", "/users/a/b"), null);
  assert.equal(matchPath("/users/:id", "/teams/a"), null);
  assert.equal(matchPath("/users/:id", "/users/%E0%A4%A"), null, "malformed escapes do not match");
  assert.deepEqual(matchPath("/health", "/health/"), {});
});

type Ctx = { tag: string };
const ok = (name: string) => (_c: Ctx, p: Record<string, string>) => new Response(JSON.stringify({ name, p }));

test("literal segments beat params, methods are checked", async () => {
  const r = new Router<Ctx>()
    .get("/users/:id", ok("get"))
    .post("/users/upsert", ok("upsert"))
    .post("/users/:id", ok("post-id"))
    .delete("/users/:id", ok("delete"));
  const up = r.match("POST", "/users/upsert");
  assert.equal(up.kind, "found");
  if (up.kind === "found") assert.equal(up.pattern, "/users/upsert");
  const byId = r.match("post", "/users/usr_1");
  assert.equal(byId.kind, "found");
  if (byId.kind === "found") {
    assert.deepEqual(byId.params, { id: "usr_1" });
    const res = await byId.handler({ tag: "x" }, byId.params);
    assert.deepEqual(await res.json(), { name: "post-id", p: { id: "usr_1" } });
  }
  const wrong = r.match("PATCH", "/users/usr_1");
  assert.deepEqual(wrong, { kind: "method_not_allowed", allowed: ["DELETE", "GET", "POST"] });
  assert.deepEqual(r.match("GET", "/nope"), { kind: "not_found" });
});
