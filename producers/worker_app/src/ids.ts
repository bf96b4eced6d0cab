// ID generators in the style of the user's common.ts: a table prefix plus a
// cuid2-like random body (lowercase base36, first character a letter).
// No dependency: crypto.getRandomValues exists in workerd and in Node 20.

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
const LETTERS = "abcdefghijklmnopqrstuvwxyz";

/** Length of the random part after the prefix (cuid2's default is 24). */
export const ID_BODY_LENGTH = 24;

export function randomBody(length: number = ID_BODY_LENGTH): string {
  if (!Number.isInteger(length) || length < 1) {
    throw new RangeError(`id length must be a positive integer, got ${length}`);
  }
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  let out = "";
  for (let i = 0; i < length; i++) {
    const b = bytes[i] as number;
    out += i === 0 ? LETTERS[b % LETTERS.length] : ALPHABET[b % ALPHABET.length];
  }
  return out;
}

export const ID_PREFIXES = {
  user: "usr_",
  passkey: "pkey_",
  tag: "tag_",
  team: "team_",
  teamMembership: "tmem_",
  teamRole: "trole_",
  competitionGroup: "cgrp_",
  competition: "comp_",
  competitionDivision: "cdiv_",
  competitionRegistration: "creg_",
  score: "score_",
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

export function createId(kind: IdKind): string {
  return ID_PREFIXES[kind] + randomBody();
}

const ID_RE = /^([a-z]+_)([a-z][0-9a-z]*)$/;

/** Split "usr_abc..." into its kind and body; null when it is not one of ours. */
export function parseId(id: string): { kind: IdKind; body: string } | null {
  const m = ID_RE.exec(id);
  if (!m) return null;
  const prefix = m[1] as string;
  for (const [kind, p] of Object.entries(ID_PREFIXES)) {
    if (p === prefix) return { kind: kind as IdKind, body: m[2] as string };
  }
  return null;
}

export const createUserId = () => createId("user");
export const createPasskeyId = () => createId("passkey");
export const createTagId = () => createId("tag");
export const createTeamId = () => createId("team");
export const createTeamMembershipId = () => createId("teamMembership");
export const createTeamRoleId = () => createId("teamRole");
export const createCompetitionGroupId = () => createId("competitionGroup");
export const createCompetitionId = () => createId("competition");
export const createCompetitionDivisionId = () => createId("competitionDivision");
export const createCompetitionRegistrationId = () => createId("competitionRegistration");
export const createScoreId = () => createId("score");
