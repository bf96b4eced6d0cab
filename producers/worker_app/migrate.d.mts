// Types for migrate.mjs (plain JS so harness.mjs runs without a build step).
export declare const BREAKPOINT: "--> statement-breakpoint";
export declare const MIGRATIONS_TABLE: "d1_migrations";
export declare function hasSql(stmt: string): boolean;
export declare function splitStatements(text: string): string[];
export declare function listMigrationFiles(dir: string): Promise<string[]>;
export declare function applyMigrations(
  db: D1Database,
  dir: string,
  options?: { log?: (message: string) => void },
): Promise<string[]>;
