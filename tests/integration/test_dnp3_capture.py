"""What the outstation sends, as tshark's DNP3 dissector reads it: a capture on the loopback interface (dumpcap) of
a dnp3py master's integrity poll split over several confirmed fragments, event polls, a freeze, a control, a delay
measurement and a time set, with no malformed frame, no bad CRC and no bad length in it."""
from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from firmware.comms.dnp3 import link
from tests.integration.dnp3_support import OUTSTATION, Dnp3Meter, master, run

pytest.importorskip("dnp3")

from dnp3.application.builder import build_all_objects_request, build_write_request  # noqa: E402
from dnp3.application.fragment import ObjectBlock  # noqa: E402
from dnp3.application.qualifiers import ObjectHeader, PrefixCode, RangeCode  # noqa: E402
from dnp3.core.enums import FunctionCode  # noqa: E402
from dnp3.master.commands import CommandBuilder  # noqa: E402

BAD = ("_ws.malformed || _ws.expert.severity == error || dnp3.hdr.CRC.incorrect || "
       "dnp3.data_chunk.CRC.incorrect || dnp3.invalid_length")
# TCP data tshark could not take as DNP3 at all (a frame whose header does not check is not dissected)
UNDECODED = "tcp.len > 0 && !dnp3"
needs_tools = pytest.mark.skipif(shutil.which("tshark") is None or shutil.which("dumpcap") is None,
                                 reason="tshark and dumpcap are not installed (.ci/run installs them)")


def tshark(pcap: Path, port: int, *args: str) -> list[str]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},dnp3", *args],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


class Capture:
    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (path.exists() and path.stat().st_size > 0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dumpcap did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            time.sleep(0.05)
        time.sleep(0.5)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@needs_tools
def test_capture_decodes_cleanly_in_tshark(tmp_path):
    meter = Dnp3Meter(tmp_path, {"max_fragment": 249})
    pcap = tmp_path / "dnp3.pcapng"
    cap = Capture(pcap, meter.port)
    try:
        async def go():
            async with master(meter.port) as (runner, soe):
                m = runner.master
                integrity = await runner.integrity_poll()
                meter.publish(v_an=250.0, p_total=9000.0, revenue_locked=1.0, wh_delivered=123_500_000.0)
                time.sleep(0.4)
                await runner.class_poll()
                await runner.request(build_all_objects_request(FunctionCode.IMMEDIATE_FREEZE, 20, 0,
                                                               seq=m.next_request_sequence()))
                await runner.request(m.build_direct_operate(CommandBuilder().pulse_on(2).build_direct_operate()))
                await runner.request(m.build_delay_measure())
                header = ObjectHeader.build(group=50, variation=1, prefix=PrefixCode.NONE,
                                            range_code=RangeCode.UINT8_COUNT)
                now = int(time.time() * 1000).to_bytes(6, "little")
                await runner.request(build_write_request((ObjectBlock(header=header, data=b"\x01" + now),),
                                                         seq=m.next_request_sequence()))
                await runner.request(build_all_objects_request(FunctionCode.READ, 30, 1, seq=m.next_request_sequence()))
                return integrity
        integrity = run(go())
    finally:
        cap.stop()
        meter.close()
    assert len(integrity) >= 2, "the integrity poll spans several confirmed fragments"
    rows = tshark(pcap, meter.port, "-Y", "dnp3", "-T", "fields", "-e", "dnp3.src", "-e", "dnp3.al.func",
                  "-e", "dnp3.al.obj")
    from_outstation = [r.split("\t") for r in rows if r.split("\t")[0] == str(OUTSTATION)]
    assert len(from_outstation) >= 8
    funcs = {f for r in from_outstation for f in r[1].split(",") if f}
    assert funcs == {"129"}
    objects = {int(x, 0) for r in from_outstation if len(r) > 2 for x in r[2].split(",") if x}
    # analog inputs (float, 32-bit), counters, frozen counters, binary inputs, binary output status, analog, binary
    # and counter events, the CROB echo, the time delay
    assert {0x1E05, 0x1E01, 0x1405, 0x1509, 0x0102, 0x0A02, 0x2007, 0x0202, 0x1605, 0x0C01, 0x3402} <= objects, \
        sorted(hex(x) for x in objects)
    assert tshark(pcap, meter.port, "-Y", BAD) == []
    assert tshark(pcap, meter.port, "-Y", UNDECODED) == []


@needs_tools
def test_tshark_flags_what_it_should(tmp_path):
    """The same filters on a capture of frames with one flipped bit (header CRC, data CRC) find both, so a clean
    capture above means tshark checked every CRC."""
    good = link.encode(0x44, 3, OUTSTATION, bytes((0xC0, 0xC0, 0x81, 0x00, 0x00)))
    frames = [good, good[:9] + bytes((good[9] ^ 1,)) + good[10:], good[:-1] + bytes((good[-1] ^ 1,))]
    pcap = tmp_path / "control.pcap"
    with pcap.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))        # Ethernet
        seq = 1000
        for k, raw in enumerate(frames):
            tcp = struct.pack(">HHIIBBHHH", 20000, 40000, seq, 0, 5 << 4, 0x18, 65535, 0, 0) + raw
            seq += len(raw)
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), k, 0, 64, 6, 0, bytes((127, 0, 0, 1)),
                             bytes((127, 0, 0, 1))) + tcp
            packet = b"\x00" * 12 + b"\x08\x00" + ip
            out.write(struct.pack("<IIII", 1 + k, 0, len(packet), len(packet)) + packet)
    assert len(tshark(pcap, 20000, "-Y", BAD)) == 1
    assert len(tshark(pcap, 20000, "-Y", UNDECODED)) == 1
