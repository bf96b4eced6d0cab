"""The no-echo marker of the reverse pipeline (issue 16), shared by both directions.

After cut-over the D1 sink writes MySQL's changes into D1, where the capture triggers would
log them and the relay would ship them back to MySQL: an echo. The sink therefore inserts
one row into this table first and deletes it last inside the same `batch()` (D1's only
transaction), and every capture trigger carries `WHEN NOT EXISTS (…marker…)`. Nobody else
ever sees the row: a batch is atomic and D1 runs one at a time.
"""

from __future__ import annotations

MARKER_TABLE = "_d1cdc_reverse_marker"
MARKER_DDL = (
    f'CREATE TABLE IF NOT EXISTS "{MARKER_TABLE}" ("id" INTEGER PRIMARY KEY CHECK ("id" = 1))'
)
# The trigger condition: capture only while the sink is not writing.
NOT_REVERSE = f'NOT EXISTS (SELECT 1 FROM "{MARKER_TABLE}")'
