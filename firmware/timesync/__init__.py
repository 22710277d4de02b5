"""Time quality: chrony's tracking state, the ``time`` snapshot, time events, time-source priority.

The time service (``firmware.services.timesync``) owns the ``time`` snapshot (``SNAPSHOT_NAME``,
``LAYOUT``) and the time event log (``EVENTS_DB``, ``EVENTS_TABLE``); the metrology service copies
``time_synced`` from the snapshot into the measurement snapshot, and the MQTT and e-mail services read
the event log. Their names live here, once.
"""
from __future__ import annotations

from firmware.ipc import names

SNAPSHOT_NAME = names.TIME     # firmware.ipc.names owns the name
LAYOUT = [("time_synced", 1), ("time_offset", 1), ("time_stratum", 1), ("time_root_distance", 1),
          ("time_leap", 1), ("time_ref_age", 1), ("time_quality", 1)]
EVENTS_DB = "time.db"          # under data_dir
EVENTS_TABLE = "time_events"
EVENTS_COLUMNS = {"event": "TEXT", "offset": "REAL", "info": "JSON"}
