"""A stand-in for acquisition and metrology in front of the recorder service: a generated signal goes in sample
blocks onto a real samples ring and through the real metrology pipeline, whose PQ records go onto the real events
ring (``firmware.ipc.pqrecords.feed_records``, what the metrology service writes), paced against the clock."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from firmware.config import meter_schema
from firmware.control import ControlClient
from firmware.ipc import names, pqrecords
from firmware.ipc.names import instance_name, shm_name
from firmware.ipc.ring import Ring
from firmware.ipc.samples import FLAG_CHIP_RESET, FLAG_GAP, SampleBlock, block_size
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings

FS = 32000.0
BLOCK = 1024
BATCH_BLOCKS = 4            # 4096 frames per pipeline call, firmware.services.metrology.BATCH_FRAMES
SCALE = 1e-4                # V or A per code: 230 V peak 325 V = 3.25e6 codes, well inside int32


class Feeder:
    def __init__(self, run_dir: Path, signal, t0_ns: int | None = None, lose: tuple[float, float] | None = None) -> None:
        """``lose``: the blocks within this span (seconds of signal) never reach the samples ring, as frames the
        acquisition lost; the next block written says how many (metrology is fed them all)."""
        inst = instance_name(run_dir)
        self.samples = Ring.create(shm_name(inst, names.SAMPLES), block_size(BLOCK), 1024)
        self.pq = pqrecords.create_ring(shm_name(inst, names.PQ_EVENTS), meter_schema().defaults()["pq"].ring_records)
        self.snapshot = Snapshot.create(shm_name(inst, names.MEASUREMENTS), snapshot_layout())
        self.snapshot.publish({"v_an": 230.0, "wh_delivered": 1.0})
        self.signal = signal
        self.lose = (int(lose[0] * FS), int(lose[1] * FS)) if lose else None
        self.lost_frames = 0
        self.pipeline = Pipeline(MetrologySettings())
        self.t0_ns = t0_ns if t0_ns is not None else time.time_ns()
        self.index = 0
        self.restarted = False
        self.results: list = []
        self.pipeline_s = 0.0               # CPU time in the metrology pipeline
        self.write_s: list[float] = []      # CPU time to encode and write each batch's PQ records

    def feed(self, seconds: float, speed: float = 2.0) -> None:
        """``seconds`` of signal at ``speed`` times real time: sample blocks of ``BLOCK`` frames, the pipeline on
        batches of ``BATCH_BLOCKS`` of them (as the metrology service batches what acquisition writes)."""
        start, done = time.monotonic(), 0.0
        end = self.index + int(seconds * FS)
        while self.index < end:
            first = self.index
            parts = []
            for _ in range(BATCH_BLOCKS):
                x = (self.signal(self.index, BLOCK) if callable(self.signal)
                     else self.signal.sample_range(self.index, BLOCK, FS))
                ts = self.t0_ns + round(self.index * 1e9 / FS)
                flags = (FLAG_GAP if self.lost_frames else 0) | (FLAG_CHIP_RESET if self.restarted else 0)
                self.restarted = False
                block = SampleBlock(self.index, ts, FS, np.rint(x / SCALE).astype(np.int32), (SCALE,) * 7,
                                    flags=flags, lost_frames=self.lost_frames)
                if self.lose and self.lose[0] <= self.index + BLOCK and self.index < self.lose[1]:
                    self.lost_frames += BLOCK
                else:
                    self.samples.write(block.encode())
                    self.lost_frames = 0
                parts.append(block.physical())
                self.index += BLOCK
            # CPU time of this thread: what metering costs, whatever else the machine runs
            t0 = time.thread_time()
            result = self.pipeline.feed_values(np.concatenate(parts), first, self.t0_ns + round(first * 1e9 / FS))
            t1 = time.thread_time()
            self.results.append(result)
            for rec in pqrecords.feed_records(result):
                self.pq.write(rec)
            self.pipeline_s += t1 - t0
            self.write_s.append(time.thread_time() - t1)
            done += BATCH_BLOCKS * BLOCK / FS
            lag = done / speed - (time.monotonic() - start)
            if lag > 0:
                time.sleep(lag)

    def restart_acquisition(self, signal=None) -> None:
        """What a restarted acquisition service does: its sample count starts again at 0 (a chip-reset block), on
        the same samples ring, and metrology's pipeline starts over with it; ``signal`` replaces the signal
        (its time 0 is the restart)."""
        self.signal = signal if signal is not None else self.signal
        self.t0_ns = time.time_ns()
        self.index = 0
        self.pipeline = Pipeline(MetrologySettings())
        self.restarted = True

    def close(self) -> None:
        for obj in (self.samples, self.pq, self.snapshot):
            obj.unlink()
            obj.close()


def write_config(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "meter.toml"
    cfg.write_text(f'[meter]\ndata_dir = "{tmp / "var"}"\nrun_dir = "{tmp / "run"}"\n{extra}')
    return cfg


def start_recorder(repo: Path, env: dict, cfg: Path, run_dir: Path, log: Path) -> tuple[subprocess.Popen,
                                                                                       ControlClient]:
    run_dir.mkdir(parents=True, exist_ok=True)
    out = open(log, "a")  # noqa: SIM115 - the child writes it until it ends
    proc = subprocess.Popen([sys.executable, "-m", "firmware.services.recorder", "--config", str(cfg), "--board",
                             str(repo / "boards" / "sim.toml"), "--run-dir", str(run_dir)], cwd=repo, env=env,
                            stdout=out, stderr=subprocess.STDOUT)
    client = ControlClient(run_dir / "recorder.sock", timeout_s=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            client.call("ping")
            return proc, client
        except Exception:  # noqa: BLE001 - polled until the service answers
            time.sleep(0.2)
    raise AssertionError(f"recorder did not answer within 60 s: {log.read_text()[-3000:]}")


def wait_for(pred, timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
