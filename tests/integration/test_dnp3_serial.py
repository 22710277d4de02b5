"""The outstation on the serial line: the comms service opens a pseudo-terminal as its RS-485 port and a master
built from dnp3py's layers (link frames, transport segments, application requests and responses) polls it
there: link status, an integrity poll, a control; damaged octets on the line are dropped and the next request
is still answered."""
from __future__ import annotations

import os
import select
import time
import tty

import pytest

from tests.integration.dnp3_support import DNP3_VALUES, MASTER, OUTSTATION, Dnp3Meter

pytest.importorskip("dnp3")

from dnp3.datalink.builder import build_request_link_status, build_unconfirmed_user_data  # noqa: E402
from dnp3.datalink.parser import FrameParser  # noqa: E402
from dnp3.master import DefaultSOEHandler, Master, MasterConfig  # noqa: E402
from dnp3.master.commands import CommandBuilder  # noqa: E402
from dnp3.transport.reassembler import Reassembler  # noqa: E402
from dnp3.transport.segment import TransportSegment  # noqa: E402
from dnp3.transport.segmenter import Segmenter  # noqa: E402


class LineMaster:
    """dnp3py's master logic on a raw serial line: requests segmented and framed, answers reassembled."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.soe = DefaultSOEHandler()
        self.master = Master(handler=self.soe, config=MasterConfig(address=MASTER, outstation_address=OUTSTATION))
        self.segmenter = Segmenter()
        self.parser = FrameParser()
        self.reassembler = Reassembler()
        self.fragments: list[bytes] = []

    def send(self, octets: bytes) -> None:
        os.write(self.fd, octets)

    def frames(self, timeout: float) -> list:
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                out += list(self.parser.feed(os.read(self.fd, 4096)))
            elif out:
                break
        return out

    def request(self, fragment, timeout: float = 5.0) -> list:
        for segment in self.segmenter.segment(fragment.to_bytes()):
            self.send(build_unconfirmed_user_data(destination=OUTSTATION, source=MASTER, dir_from_master=True,
                                                  user_data=segment.to_bytes()).to_bytes())
        infos = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames(0.5):
                done = self.reassembler.add(TransportSegment.from_bytes(frame.user_data))
                if done is None:
                    continue
                self.fragments.append(done.data)
                info = self.master.process_response(done.data)
                infos.append(info)
                if info.con:
                    self.request_confirm(info.sequence)
                if info.fin:
                    return infos
        raise AssertionError("no complete response on the line")

    def request_confirm(self, seq: int) -> None:
        for segment in self.segmenter.segment(self.master.build_confirm(seq).to_bytes()):
            self.send(build_unconfirmed_user_data(destination=OUTSTATION, source=MASTER, dir_from_master=True,
                                                  user_data=segment.to_bytes()).to_bytes())


def pty() -> tuple[int, str]:
    master_fd, slave_fd = os.openpty()
    tty.setraw(master_fd)
    tty.setraw(slave_fd)
    path = os.ttyname(slave_fd)
    os.close(slave_fd)
    return master_fd, path


def test_outstation_on_the_serial_line(tmp_path):
    fd, path = pty()
    meter = Dnp3Meter(tmp_path, {"tcp_enabled": False, "serial_enabled": True, "serial_port": path,
                                 "serial_rs485": False, "serial_baud": 115200}, wait_tcp=False)
    try:
        line = LineMaster(fd)
        deadline = time.monotonic() + 30
        status = []
        while not status and time.monotonic() < deadline:
            line.send(build_request_link_status(destination=OUTSTATION, source=MASTER, dir_from_master=True)
                      .to_bytes())
            status = line.frames(1.0)
        assert status and status[0].header.control.function_code == 11          # LINK_STATUS
        infos = line.request(line.master.build_integrity_poll())
        assert line.soe.analog_inputs[0].value == pytest.approx(DNP3_VALUES["v_an"], rel=1e-6)
        assert infos[-1].fin
        # damage on the line, then a control: answered
        line.send(b"\x05\x64\xff\x00garbage" + bytes(300))
        line.request(line.master.build_direct_operate(CommandBuilder().pulse_on(2).build_direct_operate()))
        assert line.fragments[-1][4:7] == bytes((12, 1, 0x17)) and line.fragments[-1][-1] == 0
        assert ("metrology.demand_sync", {}) in meter.ran
    finally:
        meter.close()
        os.close(fd)
