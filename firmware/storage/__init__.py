"""Non-volatile storage: atomic files, the A/B record store for revenue data, the SQLite log store."""
