"""Digital inputs and outputs, energy pulsing and the io snapshot.

The io service (``firmware.services.io``) is the one owner of the board's digital input and output lines.
It publishes the ``io`` snapshot (``SNAPSHOT_NAME``, ``LAYOUT``): per input its state, counted pulses,
activations (off-to-on changes) and metered total; per output its level, pulses given and whether pulsing is
suspended; the alarm summary. The revenue registers read the inputs from it (``firmware.io.reader``) and the
metrology service copies the published points into the measurement snapshot, so Modbus reads them.
"""
from __future__ import annotations

from firmware.ipc import names

SNAPSHOT_NAME = names.IO           # firmware.ipc.names owns the name
CHANNELS = 16                      # inputs and outputs the snapshot has room for (board files list up to 16)
ALARM_LIST = 16                    # rows of the alarm list published for Modbus

# Array fields: index n-1 is input/output n; NaN where the board has no such line.
LAYOUT = [("di_state", CHANNELS), ("di_count", CHANNELS), ("di_activations", CHANNELS), ("di_total", CHANNELS),
          ("do_state", CHANNELS), ("do_pulses", CHANNELS), ("do_suspended", CHANNELS),
          ("pulsing_suspended", 1), ("alarm_active", 1), ("alarm_active_count", 1),
          ("alarm_unacknowledged_count", 1), ("alarm_highest_priority", 1),
          ("alarm_list_id", ALARM_LIST), ("alarm_list_priority", ALARM_LIST), ("alarm_list_state", ALARM_LIST),
          ("alarm_list_since", ALARM_LIST), ("alarm_list_value", ALARM_LIST), ("power_up_count", 1),
          ("events_unread", 1)]
# The io points the metrology service copies into the measurement snapshot (points in firmware/points/io.toml
# and alarm_active in modbus.toml).
PUBLISHED = tuple(name for name, _ in LAYOUT)
STATE_NAME = "io"                  # RecordStore name of the persisted counts, under data_dir/io
