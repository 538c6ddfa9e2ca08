"""Everything that talks HTTP to Accredible: client, provider (exactly-once issuing), emulator."""
