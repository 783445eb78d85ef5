"""Storage: the event log of facts, the hash-chained decision ledger, notifications (the
outbox), rule-set versions, tokens, clock ticks and engine snapshots."""
