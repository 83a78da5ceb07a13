"""The domain nouns, one module each. Plain immutable values; no I/O."""
