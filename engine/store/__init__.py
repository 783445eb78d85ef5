"""Storage: the event log of facts, the hash-chained decision ledger, notifications (the
outbox), rule-set versions, tokens, clock ticks and engine snapshots, in a versioned schema
that a newer release upgrades when it opens the database (see store.py for the modules)."""
