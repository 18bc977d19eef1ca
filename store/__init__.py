"""The event store: every stage, event, alarm transition, acknowledgement and trend of a run,
kept in SQLite so that it survives a restart (``store.schema`` documents the tables)."""
