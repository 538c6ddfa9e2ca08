"""Settings and the badges configuration file (docs/CONTRACT.md "Interfaces")."""
