"""What an ION7400 client reads of the Modbus map on loopback: power factor at 3143-3150 (mbpoll, libmodbus) as
well as at 3077-3084, and FC 100 "read scattered holding registers" over a plain TCP socket, its frames built
here from Schneider Electric's definition (byte count, sub-function 4, transmission number, one word an
address)."""
from __future__ import annotations

import socket
import struct

import pytest

from firmware.comms.modbus.tcp import ModbusTcpServer
from tests.integration.modbus_support import VALUES, LoopThread, Meter, mbpoll

PF = {"pf_a": 0.981, "pf_b": -0.972, "pf_c": 0.963, "pf_total": 0.975}


@pytest.fixture
def server():
    loop = LoopThread()
    meter = Meter()
    meter.snapshot.publish({**VALUES, **PF})
    srv = ModbusTcpServer(meter.handler, "127.0.0.1", 0)
    loop.run(srv.start())
    yield srv
    loop.run(srv.stop())
    loop.close()
    meter.close()


def test_power_factor_at_the_ion7400_addresses(server):
    args = ("-m", "tcp", "-p", str(server.port), "-t", "4:float", "-B")
    ion = mbpoll(*args, "-r", "3143", "-c", "4", "127.0.0.1")
    basic = mbpoll(*args, "-r", "3077", "-c", "4", "127.0.0.1")
    for k, name in enumerate(PF):
        assert float(ion[3143 + 2 * k]) == pytest.approx(PF[name], rel=1e-5), name
        assert float(basic[3077 + 2 * k]) == pytest.approx(PF[name], rel=1e-5), name


class Client:
    """Modbus TCP over a socket: one MBAP frame out, one in, within a deadline."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.tid = 0

    def ask(self, pdu: bytes) -> bytes:
        self.tid += 1
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, 1) + pdu)
        header = self._exactly(7)
        tid, pid, length, unit = struct.unpack(">HHHB", header)
        assert (tid, pid, unit) == (self.tid, 0, 1)
        return self._exactly(length - 1)

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            assert chunk, "connection closed"
            out += chunk
        return out

    def close(self) -> None:
        self.sock.close()


def scattered(addresses: list[int], transmission: int = 0x5A, subfunction: int = 4) -> bytes:
    body = bytes((subfunction, transmission)) + struct.pack(f">{len(addresses)}H", *addresses)
    return bytes((100, len(body))) + body


def floats(words: bytes) -> list[float]:
    return [struct.unpack(">f", words[i:i + 4])[0] for i in range(0, len(words), 4)]


def test_fc100_reads_scattered_registers(server):
    client = Client(server.port)
    try:
        # PF A (3143-3144), total energy delivered (s64 at 3203-3206), frequency (3109-3110), V a-n (3027-3028)
        addresses = [3143, 3144, 3203, 3204, 3205, 3206, 3109, 3110, 3027, 3028]
        reply = client.ask(scattered(addresses, transmission=0x5A))
        assert reply[:4] == bytes((100, 2 + 2 * len(addresses), 4, 0x5A))
        words = reply[4:]
        assert len(words) == 2 * len(addresses)
        assert floats(words[0:4])[0] == pytest.approx(PF["pf_a"], rel=1e-6)
        assert struct.unpack(">q", words[4:12])[0] == int(VALUES["wh_delivered"])
        assert floats(words[12:16])[0] == pytest.approx(VALUES["frequency"], rel=1e-6)
        assert floats(words[16:20])[0] == pytest.approx(VALUES["v_an"], rel=1e-6)
        # FC 3's rules for each run of addresses: half a float is 03, an address outside the map 02
        assert client.ask(scattered([3144])) == bytes((100 | 0x80, 3))
        assert client.ask(scattered([3143, 3144, 60000])) == bytes((100 | 0x80, 2))
        # another sub-function: 01; no address, an odd byte count, more than 100 addresses: 03
        assert client.ask(scattered([3143, 3144], subfunction=1)) == bytes((100 | 0x80, 1))
        assert client.ask(scattered([])) == bytes((100 | 0x80, 3))
        assert client.ask(bytes((100, 3, 4, 0, 0x0C))) == bytes((100 | 0x80, 3))
        assert client.ask(scattered([3143] * 101)) == bytes((100 | 0x80, 3))
        assert client.ask(bytes((100, 9, 4, 0))) == bytes((100 | 0x80, 3))          # shorter than it says
        # the server goes on answering
        assert client.ask(scattered([3109, 3110]))[:4] == bytes((100, 6, 4, 0x5A))
    finally:
        client.close()
