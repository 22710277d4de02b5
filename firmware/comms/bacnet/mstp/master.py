"""The MS/TP master node state machine (ASHRAE 135 Clause 9.5.6): token passing, Poll-For-Master,
Max_Master, Max_Info_Frames, reply timeouts.

Transport-free: ``received(frame, now)`` and ``timer(now)`` return the frames to send, so the link drives
it from the serial port and the tests drive it directly. Times are seconds on a monotonic clock.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from firmware.comms.bacnet.mstp.frame import BROADCAST, Frame, FrameType

# Clause 9.5.3 timing parameters.
T_NO_TOKEN_S = 0.500          # silence after which a master regenerates a lost token
T_SLOT_S = 0.010              # per-station slot in that wait
T_REPLY_TIMEOUT_S = 0.255     # longest wait for a reply to a data request or a token use (max 300 ms)
T_USAGE_TIMEOUT_S = 0.050     # wait for the successor to use the token (20 ms minimum, 100 ms maximum)
T_REPLY_DELAY_S = 0.250       # our longest time to answer a data-expecting-reply frame
N_POLL = 50                   # tokens between Poll-For-Master rounds
N_RETRY_TOKEN = 1             # token retries before looking for a new successor


class State(enum.Enum):
    IDLE = "idle"
    USE_TOKEN = "use_token"
    WAIT_FOR_REPLY = "wait_for_reply"
    DONE_WITH_TOKEN = "done_with_token"
    PASS_TOKEN = "pass_token"
    POLL_FOR_MASTER = "poll_for_master"
    ANSWER_DATA_REQUEST = "answer_data_request"


@dataclass
class Outgoing:
    destination: int
    data: bytes
    expecting_reply: bool


@dataclass
class MasterNode:
    mac: int
    max_master: int = 127
    max_info_frames: int = 1
    state: State = State.IDLE
    next_station: int = -1
    poll_station: int = -1
    token_count: int = 0
    frame_count: int = 0
    retry_count: int = 0
    sole_master: bool = False
    silence_from: float = 0.0
    pending_request: Frame | None = None
    queue: deque[Outgoing] = field(default_factory=deque)
    delivered: deque[tuple[int, bytes, bool]] = field(default_factory=deque)
    counters: dict[str, int] = field(default_factory=lambda: {"tokens_received": 0, "tokens_passed": 0,
                                                              "polls": 0, "data_in": 0, "data_out": 0,
                                                              "reply_timeouts": 0, "lost_tokens": 0})

    def __post_init__(self) -> None:
        if not 0 <= self.mac <= 127 or not self.mac <= self.max_master <= 127 or self.max_info_frames < 1:
            raise ValueError(f"MS/TP master: MAC {self.mac} must be 0-127 and at most Max_Master "
                             f"{self.max_master} (1-127); Max_Info_Frames {self.max_info_frames} at least 1")
        self.next_station = self.mac
        self.poll_station = self.mac

    # ------------------------------------------------------------------ helpers

    def _next(self, station: int) -> int:
        return (station + 1) % (self.max_master + 1)

    def _send(self, now: float, ftype: FrameType, dest: int, data: bytes = b"") -> Frame:
        self.silence_from = now
        return Frame(int(ftype), dest, self.mac, data)

    def send(self, destination: int, data: bytes, expecting_reply: bool) -> None:
        """Queue an NPDU for the next time this node holds the token."""
        self.queue.append(Outgoing(destination, data, expecting_reply))

    def reply(self, destination: int, data: bytes) -> None:
        """The application's answer to the data request being answered (if still in time)."""
        self.queue.appendleft(Outgoing(destination, data, False))

    # ------------------------------------------------------------------ frames in

    def received(self, frame: Frame, now: float) -> list[Frame]:
        self.silence_from = now
        if frame.source == self.mac and frame.type != FrameType.TOKEN:
            return []                     # our own echo on a half-duplex line, or a duplicate address
        mine = frame.destination == self.mac
        if not mine and frame.destination != BROADCAST:
            if self.state is State.PASS_TOKEN:
                self.state = State.IDLE   # the successor is using the token (Clause 9.5.6.8 SawTokenUser)
            return []
        answered = self._answer_in_state(frame, mine, now)
        if answered is not None:
            return answered
        if self.state is State.PASS_TOKEN:
            self.state = State.IDLE
        return self._received_idle(frame, mine, now)

    def _answer_in_state(self, frame: Frame, mine: bool, now: float) -> list[Frame] | None:
        """The reply or the poll answer this node was waiting for; None for any other frame."""
        ftype = frame.type
        if self.state is State.WAIT_FOR_REPLY and mine and ftype in (FrameType.DATA_NOT_EXPECTING_REPLY,
                                                                     FrameType.TEST_RESPONSE,
                                                                     FrameType.REPLY_POSTPONED):
            if ftype == FrameType.DATA_NOT_EXPECTING_REPLY:
                self._deliver(frame, False)
            self.state = State.DONE_WITH_TOKEN
            return self._done(now)
        if self.state is State.POLL_FOR_MASTER and mine and ftype == FrameType.REPLY_TO_POLL_FOR_MASTER:
            self.next_station = frame.source
            self.poll_station = self.mac
            self.sole_master = False
            self.token_count = 0
            self.retry_count = 0
            self.state = State.PASS_TOKEN
            self.counters["tokens_passed"] += 1
            return [self._send(now, FrameType.TOKEN, self.next_station)]
        return None

    def _received_idle(self, frame: Frame, mine: bool, now: float) -> list[Frame]:
        ftype = frame.type
        if ftype == FrameType.TOKEN and mine:
            self.counters["tokens_received"] += 1
            self.frame_count = 0
            self.sole_master = False
            self.state = State.USE_TOKEN
            return self._use_token(now)
        if ftype == FrameType.POLL_FOR_MASTER and mine:
            return [self._send(now, FrameType.REPLY_TO_POLL_FOR_MASTER, frame.source)]
        if ftype == FrameType.TEST_REQUEST and mine:
            return [self._send(now, FrameType.TEST_RESPONSE, frame.source, frame.data)]
        if ftype == FrameType.DATA_NOT_EXPECTING_REPLY:
            self._deliver(frame, False)
        elif ftype == FrameType.DATA_EXPECTING_REPLY:
            if mine:
                self._deliver(frame, True)
                self.pending_request = frame
                self.state = State.ANSWER_DATA_REQUEST
            else:
                self._deliver(frame, False)   # a broadcast expects no reply
        return []

    def _deliver(self, frame: Frame, expecting_reply: bool) -> None:
        if frame.data:
            self.counters["data_in"] += 1
            self.delivered.append((frame.source, frame.data, expecting_reply))

    # ------------------------------------------------------------------ token use

    def _use_token(self, now: float) -> list[Frame]:
        if not self.queue:
            self.state = State.DONE_WITH_TOKEN
            return self._done(now)
        item = self.queue.popleft()
        self.frame_count += 1
        self.counters["data_out"] += 1
        if item.expecting_reply and item.destination != BROADCAST:
            self.state = State.WAIT_FOR_REPLY
            return [self._send(now, FrameType.DATA_EXPECTING_REPLY, item.destination, item.data)]
        self.state = State.DONE_WITH_TOKEN
        return [self._send(now, FrameType.DATA_NOT_EXPECTING_REPLY, item.destination, item.data),
                *self._done(now)]

    def _done(self, now: float) -> list[Frame]:
        """DONE_WITH_TOKEN (Clause 9.5.6.5)."""
        if self.frame_count < self.max_info_frames and self.queue:
            self.state = State.USE_TOKEN
            return self._use_token(now)
        if self.sole_master and self.token_count < N_POLL - 1:
            self.token_count += 1
            self.frame_count = 0
            self.state = State.USE_TOKEN
            return self._use_token(now) if self.queue else self._idle_sole(now)
        if self.token_count < N_POLL - 1 and self.next_station != self.mac:
            self.token_count += 1
            return self._pass(now)
        # time to look for new masters between us and our successor
        self.token_count = 0
        self.poll_station = self._next(self.poll_station)
        if self.poll_station == self.next_station and self.next_station != self.mac:
            self.poll_station = self.mac
            return self._pass(now)
        if self.poll_station == self.mac:
            self.sole_master = True
            self.state = State.USE_TOKEN
            return self._idle_sole(now)
        self.state = State.POLL_FOR_MASTER
        self.retry_count = 0
        self.counters["polls"] += 1
        return [self._send(now, FrameType.POLL_FOR_MASTER, self.poll_station)]

    def _idle_sole(self, now: float) -> list[Frame]:
        # a sole master keeps the token; it passes its turn by waiting a usage timeout (timer() goes on)
        self.state = State.DONE_WITH_TOKEN
        self.silence_from = now
        return []

    def _pass(self, now: float) -> list[Frame]:
        self.state = State.PASS_TOKEN
        self.retry_count = 0
        self.counters["tokens_passed"] += 1
        return [self._send(now, FrameType.TOKEN, self.next_station)]

    # ------------------------------------------------------------------ timers

    def timer(self, now: float) -> list[Frame]:
        silence = now - self.silence_from
        step = {State.IDLE: self._timer_idle, State.ANSWER_DATA_REQUEST: self._timer_answer,
                State.WAIT_FOR_REPLY: self._timer_wait, State.PASS_TOKEN: self._timer_pass,
                State.POLL_FOR_MASTER: self._timer_poll, State.DONE_WITH_TOKEN: self._timer_sole}.get(self.state)
        return step(now, silence) if step is not None else []

    def _timer_idle(self, now: float, silence: float) -> list[Frame]:
        if silence < T_NO_TOKEN_S + T_SLOT_S * self.mac:
            return []
        # the token is lost: this station generates one and looks for a successor (NO_TOKEN)
        self.counters["lost_tokens"] += 1
        self.poll_station = self._next(self.mac)
        self.next_station = self.mac
        self.token_count = 0
        self.frame_count = 0
        self.state = State.POLL_FOR_MASTER
        self.counters["polls"] += 1
        return [self._send(now, FrameType.POLL_FOR_MASTER, self.poll_station)]

    def _timer_answer(self, now: float, silence: float) -> list[Frame]:
        req = self.pending_request
        if req is not None and self.queue and self.queue[0].destination == req.source:
            item = self.queue.popleft()
            self.pending_request = None
            self.state = State.IDLE
            self.counters["data_out"] += 1
            return [self._send(now, FrameType.DATA_NOT_EXPECTING_REPLY, item.destination, item.data)]
        if silence >= T_REPLY_DELAY_S and req is not None:
            self.pending_request = None
            self.state = State.IDLE
            return [self._send(now, FrameType.REPLY_POSTPONED, req.source)]
        return []

    def _timer_wait(self, now: float, silence: float) -> list[Frame]:
        if silence < T_REPLY_TIMEOUT_S:
            return []
        self.counters["reply_timeouts"] += 1
        self.state = State.DONE_WITH_TOKEN
        return self._done(now)

    def _timer_pass(self, now: float, silence: float) -> list[Frame]:
        if silence < T_USAGE_TIMEOUT_S:
            return []
        if self.retry_count < N_RETRY_TOKEN:
            self.retry_count += 1
            return [self._send(now, FrameType.TOKEN, self.next_station)]
        # the successor is gone: poll for a new one after it
        self.poll_station = self._next(self.next_station)
        self.next_station = self.mac
        self.counters["polls"] += 1
        if self.poll_station == self.mac:
            self.sole_master = True
            self.state = State.DONE_WITH_TOKEN
            return []
        self.state = State.POLL_FOR_MASTER
        return [self._send(now, FrameType.POLL_FOR_MASTER, self.poll_station)]

    def _timer_poll(self, now: float, silence: float) -> list[Frame]:
        if silence < T_USAGE_TIMEOUT_S:
            return []
        if self.next_station != self.mac:
            return self._pass(now)        # a known successor: the poll round ends, the token moves on
        self.poll_station = self._next(self.poll_station)
        if self.poll_station == self.mac:
            self.sole_master = True
            self.state = State.USE_TOKEN
            self.frame_count = 0
            return self._use_token(now)
        self.counters["polls"] += 1
        return [self._send(now, FrameType.POLL_FOR_MASTER, self.poll_station)]

    def _timer_sole(self, now: float, silence: float) -> list[Frame]:
        if not self.sole_master or silence < T_USAGE_TIMEOUT_S:
            return []
        self.frame_count = 0
        return self._done(now) if self.queue else self._sole_round(now)

    def _sole_round(self, now: float) -> list[Frame]:
        self.token_count += 1
        if self.token_count >= N_POLL - 1:
            return self._done(now)
        self.silence_from = now
        return []
