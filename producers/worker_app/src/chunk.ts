// D1 binds at most 100 parameters per statement; multi-row inserts are cut
// into statements that stay under it (the user's app does this with autochunk).
export const D1_MAX_BOUND_PARAMETERS = 100;

/** Rows per INSERT when each row binds up to `paramsPerRow` parameters. */
export function rowsPerStatement(paramsPerRow: number, otherParameters = 0): number {
  if (!Number.isInteger(paramsPerRow) || paramsPerRow < 1) throw new RangeError(`paramsPerRow ${paramsPerRow}`);
  const n = Math.floor((D1_MAX_BOUND_PARAMETERS - otherParameters) / paramsPerRow);
  if (n < 1) throw new RangeError(`a row of ${paramsPerRow} parameters does not fit`);
  return n;
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
