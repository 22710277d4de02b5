"""The event log: cutoff, depth with the oldest overwritten, unread counter across processes and restarts."""
import multiprocessing

import pytest

from firmware.config.store import load_file
from firmware.storage.eventlog import Event, EventLog, band
from hal.errors import StorageError


def test_cutoff_discards_events_at_or_below_it(tmp_path):
    log = EventLog(tmp_path, cutoff=5)
    assert log.record(Event(5, "security", "login_valid")) is None
    assert log.record(Event(6, "pq", "sag", "Va 42 %")) is not None
    rows = log.read()
    assert [(r["priority"], r["cause"], r["effect"]) for r in rows] == [(6, "sag", "Va 42 %")]
    assert log.discarded == 1


def test_depth_overwrites_the_oldest(tmp_path):
    log = EventLog(tmp_path, cutoff=0, depth=100)
    for i in range(130):
        log.record(Event(10, "test", "tick", str(i)), ts=1000.0 + i)
    rows = log.read()
    assert len(rows) == 100
    assert rows[0]["effect"] == "30" and rows[-1]["effect"] == "129"


def test_unread_counter_survives_reopening_and_counts_per_reader(tmp_path):
    log = EventLog(tmp_path, cutoff=0)
    for i in range(7):
        log.record(Event(200, "alarms", "over_thd", detail={"i": i}))
    assert log.unread() == 7
    first_three = log.read(limit=3)[-1]["id"]
    assert log.mark_read(up_to_id=first_three) == first_three
    log.close()
    again = EventLog(tmp_path, cutoff=0)
    assert again.unread() == 4
    assert again.unread("display") == 7
    again.mark_read()
    assert again.unread() == 0
    assert again.mark_read(up_to_id=1) == first_three + 4   # acknowledging never goes backwards


def _writer(path, n, source):
    log = EventLog(path, cutoff=0)
    for i in range(n):
        log.record(Event(100, source, "tick", str(i)))


def test_several_processes_write_one_log(tmp_path):
    procs = [multiprocessing.Process(target=_writer, args=(tmp_path, 50, f"p{k}")) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    rows = EventLog(tmp_path, cutoff=0).read()
    assert len(rows) == 150
    for k in range(3):
        assert [r["effect"] for r in rows if r["source"] == f"p{k}"] == [str(i) for i in range(50)]


def test_filters_by_time_and_priority(tmp_path):
    log = EventLog(tmp_path, cutoff=0)
    for i, prio in enumerate([10, 200, 130, 70]):
        log.record(Event(prio, "test", "e", str(i)), ts=100.0 + i)
    assert [r["effect"] for r in log.read(since_ts=101, until_ts=102)] == ["1", "2"]
    assert [r["effect"] for r in log.read(min_priority=128)] == ["1", "2"]


def test_bad_events_and_settings_are_refused(tmp_path):
    with pytest.raises(StorageError, match="priority 256"):
        Event(256, "x", "y")
    with pytest.raises(StorageError, match="source and a cause"):
        Event(1, "", "y")
    with pytest.raises(StorageError, match="cutoff"):
        EventLog(tmp_path, cutoff=300)


def test_bands_follow_the_alarm_priorities():
    assert [band(p) for p in (0, 1, 63, 64, 128, 191, 192, 255)] == \
        ["none", "info", "info", "low", "medium", "medium", "high", "high"]


def test_event_log_from_configuration(tmp_path):
    cfg = tmp_path / "meter.toml"
    cfg.write_text(f'[meter]\ndata_dir = "{tmp_path / "data"}"\n[events]\ncutoff = 20\ndepth = 200\n')
    log = EventLog.from_config(load_file(cfg))
    assert log.cutoff == 20 and log.store.depth == 200
    assert log.path == tmp_path / "data" / "events.db"


def test_events_at_or_above_the_syslog_priority_reach_a_collector(tmp_path):
    """[events] syslog_priority: PQ events, alarms, changes go to the [security] syslog collector (facility
    local0) whether the log records them or not; below it, nothing is sent."""
    import re
    import socket

    from firmware.config import meter_schema

    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(2.0)
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path)},
                                  "security": {"syslog_address": "127.0.0.1",
                                               "syslog_port": collector.getsockname()[1]},
                                  "events": {"syslog_priority": 100, "cutoff": 150}})
    log = EventLog.from_config(config)
    try:
        log.record(Event(255, "pq", "sag", "residual 60.0 % on A", detail={"duration_s": 0.1}))
        log.record(Event(32, "io", "input_on", "di1"))                    # below the syslog priority
        log.record(Event(120, "alarms", "alarm_pickup", "Over THD V1"))   # sent, though under the cutoff
        got = [collector.recv(4096) for _ in range(2)]
        with pytest.raises(socket.timeout):
            collector.settimeout(0.5)
            collector.recv(4096)
    finally:
        log.close()
        collector.close()
    pri = [int(re.match(rb"<(\d+)>1 ", m).group(1)) for m in got]
    assert pri == [16 * 8 + 2, 16 * 8 + 5]                                 # local0, critical / notice
    assert b" sag " in got[0] and b'duration_s="0.1"' in got[0] and b"pq sag: residual 60.0 % on A" in got[0]
    assert b" alarm_pickup " in got[1]
    assert [e["cause"] for e in EventLog(tmp_path).read()] == ["sag"]       # the cutoff still applies to the log
