"""Verify: source ⇄ target, table by table, chunk by chunk (what Vitess VDiff does, for D1)."""
