// Prints the Drizzle schema's declared column modes as JSON, for the Python test that
// checks `d1cdc schema infer` against them: {table: {column: {type, mode, notNull,
// primary, length}}}. Column names are the SQL names (drizzle's snake_case casing).
import { getTableConfig, type SQLiteTable } from "drizzle-orm/sqlite-core";
import { toSnakeCase } from "drizzle-orm/casing";
import * as schema from "../src/schema";

type Declared = {
  type: string;
  notNull: boolean;
  primary: boolean;
  length: number | null;
};

const out: Record<string, Record<string, Declared>> = {};
for (const value of Object.values(schema)) {
  if (typeof value !== "object" || value === null || !("getSQL" in value)) continue;
  const config = getTableConfig(value as SQLiteTable);
  const columns: Record<string, Declared> = {};
  for (const column of config.columns) {
    const name = column.keyAsName ? toSnakeCase(column.name) : column.name;
    const length = (column as unknown as { length?: number }).length;
    columns[name] = {
      type: column.columnType,
      notNull: column.notNull,
      primary: column.primary,
      length: typeof length === "number" ? length : null,
    };
  }
  out[config.name] = columns;
}
process.stdout.write(JSON.stringify(out) + "\n");
