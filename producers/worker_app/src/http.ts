// JSON responses and mapping of errors to HTTP statuses.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** Parse a JSON object body; {} for an empty body; 400 otherwise. */
export async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text();
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, "bad_json", "request body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "bad_json", "request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** All messages along an error's cause chain (Drizzle wraps driver errors). */
export function errorMessages(err: unknown): string[] {
  const out: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 8 && cur !== undefined && cur !== null; depth++) {
    if (cur instanceof Error) {
      out.push(cur.message);
      cur = (cur as { cause?: unknown }).cause;
    } else {
      out.push(String(cur));
      break;
    }
  }
  return out;
}

export type DbErrorKind = "unique" | "foreign_key" | "not_null" | "check" | "other";

/** Classify a SQLite/D1 error by its message ("UNIQUE constraint failed: user.email"). */
export function classifyDbError(err: unknown): { kind: DbErrorKind; detail: string } {
  const msgs = errorMessages(err);
  const all = msgs.join(" | ");
  const pick = (re: RegExp): string => {
    for (const m of msgs) {
      const hit = re.exec(m);
      if (hit) return hit[0];
    }
    return msgs[msgs.length - 1] ?? "";
  };
  if (/UNIQUE constraint failed|PRIMARY KEY constraint failed/i.test(all)) {
    return { kind: "unique", detail: pick(/(UNIQUE|PRIMARY KEY) constraint failed[^|]*/i).trim() };
  }
  if (/FOREIGN KEY constraint failed/i.test(all)) {
    return { kind: "foreign_key", detail: pick(/FOREIGN KEY constraint failed[^|]*/i).trim() };
  }
  if (/NOT NULL constraint failed/i.test(all)) {
    return { kind: "not_null", detail: pick(/NOT NULL constraint failed[^|]*/i).trim() };
  }
  if (/CHECK constraint failed/i.test(all)) {
    return { kind: "check", detail: pick(/CHECK constraint failed[^|]*/i).trim() };
  }
  return { kind: "other", detail: msgs[msgs.length - 1] ?? String(err) };
}

export function errorResponse(err: unknown): Response {
  if (err instanceof HttpError) {
    return json({ error: err.code, message: err.message }, err.status);
  }
  const { kind, detail } = classifyDbError(err);
  switch (kind) {
    case "unique":
      return json({ error: "conflict", message: detail }, 409);
    case "foreign_key":
      return json({ error: "foreign_key", message: detail }, 409);
    case "not_null":
    case "check":
      return json({ error: "constraint", message: detail }, 422);
    default:
      return json({ error: "internal", message: detail }, 500);
  }
}

// Small body validators --------------------------------------------------

export function optString(body: Record<string, unknown>, key: string, max = 10000): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new HttpError(400, "bad_field", `${key} must be a string`);
  if (v.length > max) throw new HttpError(400, "bad_field", `${key} longer than ${max}`);
  return v;
}

export function reqString(body: Record<string, unknown>, key: string, max = 10000): string {
  const v = optString(body, key, max);
  if (v === undefined) throw new HttpError(400, "missing_field", `${key} is required`);
  return v;
}

export function optInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw new HttpError(400, "bad_field", `${key} must be an integer`);
  }
  return v;
}

export function optNumber(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new HttpError(400, "bad_field", `${key} must be a number`);
  }
  return v;
}

export function optBool(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw new HttpError(400, "bad_field", `${key} must be a boolean`);
  return v;
}

export function optStringArray(body: Record<string, unknown>, key: string): string[] | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new HttpError(400, "bad_field", `${key} must be an array of strings`);
  }
  return v as string[];
}

/** Seconds or ISO string to Date (the app stores timestamps in seconds). */
export function optDate(body: Record<string, unknown>, key: string): Date | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  let d: Date;
  if (typeof v === "number") d = new Date(v * 1000);
  else if (typeof v === "string") d = new Date(v);
  else throw new HttpError(400, "bad_field", `${key} must be seconds or an ISO date`);
  if (Number.isNaN(d.getTime())) throw new HttpError(400, "bad_field", `${key} is not a valid date`);
  return d;
}

/** Decode standard or URL-safe base64 to bytes; 400 when malformed. */
export function decodeBase64(s: string, key = "value"): Uint8Array {
  const norm = s.replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(norm)) {
    throw new HttpError(400, "bad_field", `${key} must be base64`);
  }
  let bin: string;
  try {
    bin = atob(norm);
  } catch {
    throw new HttpError(400, "bad_field", `${key} must be base64`);
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i] as number);
  return btoa(bin);
}

export function slugify(s: string): string {
  return (
    s
      .toLowerCase()
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 200) || "x"
  );
}
