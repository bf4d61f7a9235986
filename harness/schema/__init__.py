"""Schema reflection (database → plain snapshot) and comparison (models ↔ database, snapshot ↔ snapshot)."""
