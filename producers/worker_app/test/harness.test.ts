// harness.mjs and load.mjs as a caller uses them: spawn, read the JSON line,
// drive load over real HTTP, check the .sqlite from outside, SIGTERM.
import assert from "node:assert/strict";
import { test } from "node:test";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("harness prints one JSON line, serves HTTP, survives load, exits 0 on SIGTERM", async () => {
  const tmp = await mkdtemp(path.join(tmpdir(), "harness-test-"));
  const h = spawn(process.execPath, ["harness.mjs", "--persist", path.join(tmp, "d1")], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  h.stderr.on("data", (d) => (stderr += d));
  try {
    const lines = createInterface({ input: h.stdout });
    const [first] = (await Promise.race([
      once(lines, "line"),
      once(h, "exit").then(() => { throw new Error(`harness exited: ${stderr}`); }),
    ])) as [string];
    const ready = JSON.parse(first) as { url: string; d1_file: string; migrations_applied: string[] };
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(path.basename(ready.d1_file), /^[0-9a-f]{64}\.sqlite$/);
    assert.ok(path.isAbsolute(ready.d1_file) && existsSync(ready.d1_file));
    const all = (await readdir(path.join(ROOT, "migrations"))).filter((n) => n.endsWith(".sql")).sort();
    assert.deepEqual(ready.migrations_applied, all);
    assert.deepEqual(await (await fetch(`${ready.url}/health`)).json(), { ok: true });

    const load = await run(["load.mjs", "--url", ready.url, "--rate", "40", "--seconds", "2", "--seed", "7"]);
    assert.equal(load.code, 0, load.stdout + load.stderr);
    const out = JSON.parse(load.stdout.trim().split("\n").pop() ?? "{}");
    assert.equal(out.requests, 80);
    assert.equal(out.errors, 0, JSON.stringify(out.error_samples));
    assert.equal(out.ok + out.failed_expected, 80);
    for (const k of ["p50_ms", "p99_ms", "by_route"]) assert.ok(k in out, k);

    const stats = (await (await fetch(`${ready.url}/stats`)).json()) as { counts: Record<string, number> };
    assert.ok((stats.counts.user ?? 0) > 0);
  } finally {
    h.kill("SIGTERM");
    const [code] = (await once(h, "exit")) as [number | null];
    assert.equal(code, 0, stderr);
    await rm(tmp, { recursive: true, force: true });
  }
});

test("harness and load refuse bad arguments with status 2", async () => {
  assert.equal((await run(["harness.mjs"])).code, 2);
  assert.equal((await run(["harness.mjs", "--persist", "/tmp/x", "--port", "abc"])).code, 2);
  assert.equal((await run(["load.mjs"])).code, 2);
  assert.equal((await run(["load.mjs", "--url", "http://127.0.0.1:1", "--rate", "0"])).code, 2);
});
