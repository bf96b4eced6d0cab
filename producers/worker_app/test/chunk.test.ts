import assert from "node:assert/strict";
import { test } from "node:test";
import { chunk, rowsPerStatement } from "../src/chunk.ts";

test("chunk splits in order and keeps every item", () => {
  assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.deepEqual(chunk([], 3), []);
  assert.deepEqual(chunk([1, 2], 5), [[1, 2]]);
  assert.throws(() => chunk([1], 0), RangeError);
});

test("rowsPerStatement stays under D1's 100 parameters", () => {
  assert.equal(rowsPerStatement(12), 8);
  assert.equal(rowsPerStatement(8), 12);
  assert.equal(rowsPerStatement(10, 5), 9);
  assert.equal(rowsPerStatement(100), 1);
  assert.throws(() => rowsPerStatement(101), RangeError);
  assert.throws(() => rowsPerStatement(0), RangeError);
});
