"""What turns source writes into events.

- `emitter.ChangeEmitter`: the shim an application calls (`upsert`, `delete` + tombstone);
  `capture.capture_changes` wires it to an SQLAlchemy session (emit after commit).
- `spool.Spool`: while Kafka is unreachable the app's emitter appends events to a bounded
  on-disk spool and replays it, in order, before new events once Kafka is back; a full
  spool raises `SpoolFullError` to the application instead of dropping anything.
- `backfill.Backfill` (`d1cdc backfill`): keyset-paged watermark poller over a `sources`
  backend (SQLite file or the D1 HTTP API), checkpointed in `_d1cdc_watermarks` only after
  Kafka acknowledged; hard deletes by key-set diff (`deletes`).
- `topics.ensure_topics` (`d1cdc topics create`) and `rebuild.rebuild` (`d1cdc rebuild`).
"""
