"""Settings and the badges configuration file (SPEC.md §6)."""
