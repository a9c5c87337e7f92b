"""Dataset builders: deterministic, seeded, from the project's own sources."""
