// A tiny hand-written router: "/users/:id/rename-id" style patterns,
// exact segment matching, URI-decoded params.

export type Params = Record<string, string>;
export type Handler<Ctx> = (ctx: Ctx, params: Params) => Promise<Response> | Response;

type Route<Ctx> = {
  method: string;
  pattern: string;
  segments: string[];
  handler: Handler<Ctx>;
};

export function splitPath(pathname: string): string[] {
  return pathname.split("/").filter((s) => s.length > 0);
}

/** Match a pattern like "/users/:id" against a path; params or null. */
export function matchPath(pattern: string, pathname: string): Params | null {
  const want = splitPath(pattern);
  const got = splitPath(pathname);
  if (want.length !== got.length) return null;
  const params: Params = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    const g = got[i] as string;
    if (w.startsWith(":")) {
      let value: string;
      try {
        value = decodeURIComponent(g);
      } catch {
        return null;
      }
      if (value.length === 0) return null;
      params[w.slice(1)] = value;
    } else if (w !== g) {
      return null;
    }
  }
  return params;
}

export type RouteMatch<Ctx> =
  | { kind: "found"; handler: Handler<Ctx>; params: Params; pattern: string }
  | { kind: "method_not_allowed"; allowed: string[] }
  | { kind: "not_found" };

export class Router<Ctx> {
  private routes: Route<Ctx>[] = [];

  add(method: string, pattern: string, handler: Handler<Ctx>): this {
    this.routes.push({ method: method.toUpperCase(), pattern, segments: splitPath(pattern), handler });
    return this;
  }
  get(p: string, h: Handler<Ctx>) { return this.add("GET", p, h); }
  post(p: string, h: Handler<Ctx>) { return this.add("POST", p, h); }
  put(p: string, h: Handler<Ctx>) { return this.add("PUT", p, h); }
  patch(p: string, h: Handler<Ctx>) { return this.add("PATCH", p, h); }
  delete(p: string, h: Handler<Ctx>) { return this.add("DELETE", p, h); }

  /**
   * Find the handler. Literal segments win over params when two patterns
   * match the same path (so "/users/upsert" beats "/users/:id").
   */
  match(method: string, pathname: string): RouteMatch<Ctx> {
    const m = method.toUpperCase();
    const allowed = new Set<string>();
    let best: { route: Route<Ctx>; params: Params; score: number } | null = null;
    for (const route of this.routes) {
      const params = matchPath(route.pattern, pathname);
      if (params === null) continue;
      if (route.method !== m) {
        allowed.add(route.method);
        continue;
      }
      const score = route.segments.filter((s) => !s.startsWith(":")).length;
      if (best === null || score > best.score) best = { route, params, score };
    }
    if (best) return { kind: "found", handler: best.route.handler, params: best.params, pattern: best.route.pattern };
    if (allowed.size > 0) return { kind: "method_not_allowed", allowed: [...allowed].sort() };
    return { kind: "not_found" };
  }
}
