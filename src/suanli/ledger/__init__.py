"""The ledger: append-only, hash-chained records of compute contributed and consumed."""
