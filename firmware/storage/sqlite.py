"""The one way the meter's processes open a SQLite file they write: WAL, so that readers in other processes
never wait for the writer nor see half a transaction; ``synchronous=FULL`` by default, so that a committed
row survives a power failure; autocommit (each service takes its own transactions); shareable between the
threads of one process (callers hold their own lock)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 10.0        # how long a writer waits for another process's lock before giving up


def open_db(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open (creating it and its directory) the database at ``path``; sqlite3.Error when it cannot be."""
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous={synchronous!r}: one of OFF, NORMAL, FULL, EXTRA")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    except sqlite3.Error:
        db.close()
        raise
    return db
