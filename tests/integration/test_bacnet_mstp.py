"""MS/TP over a pty pair: the meter's node (MAC 1) and a test master (MAC 0, the same Clause 9 state machine
driven by the test) pass the token and carry ReadProperty requests and answers; every frame on the line goes
to a pcap (DLT 165) that tshark's MS/TP and BACnet dissectors decode with no malformed frame; then fuzzed
frames, after which the node still answers."""
from __future__ import annotations

import asyncio
import os
import random
import shutil
import struct
import subprocess
import time
import tty
from pathlib import Path

import pytest
from bacpypes3.apdu import APCISequence, APDU, ReadPropertyACK, ReadPropertyRequest
from bacpypes3.errors import ExecutionError
from bacpypes3.pdu import PDU
from bacpypes3.primitivedata import CharacterString, ObjectIdentifier, Real

from firmware.comms.bacnet.mstp.frame import Frame, FrameType, Receiver, data_crc, header_crc
from firmware.comms.bacnet.mstp.master import MasterNode
from tests.integration.bacnet_support import BACNET_VALUES, bacnet_rig

TEST_MAC, METER_MAC, MAX_MASTER = 0, 1, 3
LINKTYPE_BACNET_MS_TP = 165
FUZZ_FRAMES = 2_000 if os.environ.get("CI") else 10_000
REAL_REL = 1e-6               # BACnet REAL is single precision (2**-24)


class LineMaster:
    """The test's end of the line: a Clause 9 master node on the pty's other side, with a pcap of the line."""

    def __init__(self, fd: int, pcap: Path) -> None:
        self.fd = fd
        self.node = MasterNode(TEST_MAC, MAX_MASTER, 1)
        self.receiver = Receiver(0.1)
        self.pcap = pcap.open("wb")
        self.pcap.write(PCAP_HEADER)
        self.frames = 0
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, self._readable)
        self.task = loop.create_task(self._ticks())

    def record(self, raw: bytes) -> None:
        now = time.time()
        self.pcap.write(struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(raw), len(raw)) + raw)
        self.frames += 1

    def write(self, frames: list[Frame]) -> None:
        for f in frames:
            raw = f.encode()
            self.record(raw)
            os.write(self.fd, raw)

    def _readable(self) -> None:
        data = os.read(self.fd, 4096)
        now = time.monotonic()
        for frame in self.receiver.feed(data, now):
            self.record(frame.encode())
            self.write(self.node.received(frame, now))

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.write(self.node.timer(time.monotonic()))

    async def read_property(self, oid: str, prop: str, invoke_id: int, datatype):
        request = ReadPropertyRequest(objectIdentifier=ObjectIdentifier(oid), propertyIdentifier=prop)
        request.apduInvokeID = invoke_id
        request.apduSeg = request.apduMor = request.apduSA = False
        request.apduMaxSegs, request.apduMaxResp = 0, 3           # 480-octet responses, no segments
        apdu = bytes(request.encode().encode().pduData)
        self.node.send(METER_MAC, b"\x01\x04" + apdu, True)        # NPDU: version 1, expecting reply
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            while self.node.delivered:
                source, npdu, _ = self.node.delivered.popleft()
                assert source == METER_MAC and npdu[0] == 1 and npdu[1] == 0
                ack = APCISequence.decode(APDU.decode(PDU(npdu[2:])))
                if isinstance(ack, ReadPropertyACK) and ack.apduInvokeID == invoke_id:
                    return ack.propertyValue.cast_out(datatype)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no answer to ReadProperty {oid} {prop} over MS/TP")

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        self.task.cancel()
        self.pcap.close()


PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_BACNET_MS_TP)
# What tshark says about a frame it does not accept: a bad header or data CRC, a length past the data, or a
# packet its dissectors could not decode.
TSHARK_BAD = "mstp.checksum_bad.expert || mstp.len.bad || _ws.malformed"


def _tshark_flagged(pcap: Path) -> list[str]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", TSHARK_BAD], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def _pty() -> tuple[int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    os.close(slave)                   # the meter's link opens it by name, as it opens a serial device
    return master, path


def _fuzz_frame(rng: random.Random) -> bytes:
    """One hostile frame: valid headers with wrong or missing data, broken CRCs, over-long lengths, noise."""
    kind = rng.randrange(6)
    ftype, dest, src = rng.randrange(256), rng.choice((METER_MAC, 255, rng.randrange(256))), rng.randrange(256)
    data = rng.randbytes(rng.randrange(0, 64))
    length = len(data) if kind != 2 else rng.randrange(502, 65536)
    header = bytes((ftype, dest, src, length >> 8, length & 0xFF))
    crc = header_crc(header) if kind != 1 else header_crc(header) ^ 0x01
    raw = b"\x55\xff" + header + bytes((crc,)) + data + (data_crc(data) if data else b"")
    if kind == 3:
        raw = raw[:rng.randrange(1, len(raw))]             # truncated
    elif kind == 4:
        raw = rng.randbytes(rng.randrange(1, 40))          # line noise
    elif kind == 5 and data:
        raw = raw[:-1] + bytes((raw[-1] ^ 0xFF,))          # bad data CRC
    return raw


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (.ci/run installs it)")
def test_mstp_token_passing_read_property_pcap_and_fuzz(tmp_path):
    master_fd, slave = _pty()

    async def body():
        async with bacnet_rig(tmp_path, ip_enabled=False, mstp_enabled=True, mstp_port=slave,
                              mstp_mac=METER_MAC, mstp_baud=38400, max_master=MAX_MASTER,
                              mstp_rs485=False) as rig:
            line = LineMaster(master_fd, tmp_path / "mstp.pcap")
            try:
                v = await line.read_property("analog-input,16", "present-value", 1, Real)
                assert v == pytest.approx(BACNET_VALUES["v_ln_avg"], rel=REAL_REL)
                f = await line.read_property("analog-input,18", "present-value", 2, Real)
                assert f == pytest.approx(BACNET_VALUES["frequency"], rel=REAL_REL)
                name = await line.read_property("device,4321", "object-name", 3, CharacterString)
                assert "SIM-424242" in str(name)
                link = rig.app.apps[0].link_layers[next(iter(rig.app.apps[0].link_layers))]
                # the token went round: each node received it and passed it on
                assert link.node.counters["tokens_received"] > 0 and line.node.counters["tokens_received"] > 0
                assert link.node.next_station == TEST_MAC and line.node.next_station == METER_MAC
                # Max_Master written over BACnet reaches the running node; below its own MAC it is refused
                await rig.app.device.write(rig.app.apps[0].device_object, "maxMaster", 2, None, None)
                assert link.node.max_master == 2
                with pytest.raises(ExecutionError):
                    await rig.app.device.write(rig.app.apps[0].device_object, "maxMaster", 0, None, None)
                pcap_frames = line.frames
                line.pcap.flush()
                # fuzz: hostile frames straight onto the line, then the node must still answer
                rng = random.Random(20261202)
                for i in range(FUZZ_FRAMES):
                    os.write(master_fd, _fuzz_frame(rng))
                    if i % 200 == 0:
                        await asyncio.sleep(0.001)
                await asyncio.sleep(0.3)
                stats = link.stats()
                assert stats["header_crc"] + stats["data_crc"] + stats["too_long"] + stats["noise"] > 0
                line.receiver = Receiver(0.1)       # the test's own receiver saw the fuzz echoed nowhere
                v = await line.read_property("analog-input,16", "present-value", 4, Real)
                assert v == pytest.approx(BACNET_VALUES["v_ln_avg"], rel=REAL_REL)
            finally:
                line.close()
            return pcap_frames

    pcap_frames = asyncio.run(asyncio.wait_for(body(), 120))
    os.close(master_fd)
    pcap = tmp_path / "mstp.pcap"
    # tshark decodes the capture on its own: every frame MS/TP, no malformed packet, the answers as BACnet ACKs
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "mstp.frame_type",
                             "-e", "bacapp.type", "-e", "_ws.malformed"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(fields) >= pcap_frames >= 10
    assert _tshark_flagged(pcap) == []
    # the same check on a copy of one answer with one bit flipped in its header, one in its data CRC: both
    # flagged, so the clean result above means tshark verified every CRC of the capture
    answer = Frame(FrameType.DATA_NOT_EXPECTING_REPLY, TEST_MAC, METER_MAC, b"\x01\x00\x10\x08").encode()
    control = tmp_path / "control.pcap"
    with control.open("wb") as out:
        out.write(PCAP_HEADER)
        for raw in (answer, answer[:7] + bytes((answer[7] ^ 1,)) + answer[8:], answer[:-1] + bytes((answer[-1] ^ 1,))):
            out.write(struct.pack("<IIII", 1, 0, len(raw), len(raw)) + raw)
    assert len(_tshark_flagged(control)) == 2
    types = [row.split("\t") for row in fields]
    frame_types = {int(t[0]) for t in types if t[0]}
    assert {FrameType.TOKEN, FrameType.DATA_EXPECTING_REPLY, FrameType.DATA_NOT_EXPECTING_REPLY} <= frame_types
    assert sum(1 for t in types if len(t) > 1 and t[1] == "3") >= 4      # ComplexACKs of the 4 reads
