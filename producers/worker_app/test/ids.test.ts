import assert from "node:assert/strict";
import { test } from "node:test";
import { ID_BODY_LENGTH, ID_PREFIXES, createId, createUserId, parseId, randomBody } from "../src/ids.ts";

test("user ids are usr_ + 24 base36 chars starting with a letter", () => {
  for (let i = 0; i < 1000; i++) {
    const id = createUserId();
    assert.match(id, /^usr_[a-z][0-9a-z]{23}$/);
    assert.equal(id.length, 4 + ID_BODY_LENGTH);
  }
});

test("every kind has its own prefix and round-trips through parseId", () => {
  const prefixes = Object.values(ID_PREFIXES);
  assert.equal(new Set(prefixes).size, prefixes.length);
  for (const kind of Object.keys(ID_PREFIXES) as (keyof typeof ID_PREFIXES)[]) {
    const id = createId(kind);
    assert.ok(id.startsWith(ID_PREFIXES[kind]));
    const parsed = parseId(id);
    assert.deepEqual(parsed, { kind, body: id.slice(ID_PREFIXES[kind].length) });
  }
});

test("parseId rejects foreign ids", () => {
  for (const bad of ["", "usr_", "usr", "xyz_abc", "USR_abc", "usr_1abc", "usr_ab-c", "usr_abc\n"]) {
    assert.equal(parseId(bad), null, JSON.stringify(bad));
  }
});

test("ids do not collide over 50k draws", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 50_000; i++) seen.add(createUserId());
  assert.equal(seen.size, 50_000);
});

test("randomBody uses the whole alphabet and checks its length", () => {
  const chars = new Set(randomBody(5000).slice(1));
  assert.equal(chars.size, 36);
  assert.equal(randomBody(1).length, 1);
  assert.throws(() => randomBody(0), RangeError);
  assert.throws(() => randomBody(2.5), RangeError);
});
