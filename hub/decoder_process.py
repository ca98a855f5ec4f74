"""The events' decoder in a child process of the hub's own (`python -m hub.decoder_process`).

Checking an event (strict JSON, the canonical form, the Ed25519 signature, topic, time and body: all
of `hub.ingest.Decoder`) costs the hub about 60 µs of the 114 µs an event costs it in all, and
needs nothing of the hub but its config. In one process it takes turns with the store (the GIL: the
checks on a second thread made the hub slower, measured), so the run thread hands a batch's events to
this child and stores the batch before it meanwhile (hub/service.py): two cores, not one. The child
answers, per event, "accepted" or the quarantine's reason and detail; the hub then reads an accepted
event's fields again from the same bytes (`hub.ingest.decoded_again`), without the checks.

Between them, on the child's stdin and stdout (the hub's pipes, never the network's):
- first, one line of JSON: the decoder's hall, topic prefix, device keys and size limit;
- request: "<II" count and byte length of the rest, then per event "<HHI" the lengths of its topic,
  its receipt time (ISO 8601) and its payload, followed by the three;
- answer: "<I" byte length of the rest, then per event one byte, 0 accepted or 1 refused, a refusal
  followed by "<HH" the lengths of its reason and detail and the two (UTF-8).

If the child cannot be started, dies, or does not answer within ANSWER_WAIT_S, the batch is decoded in
the hub's own thread (the same Decoder, so the same answers), the failure logged, and a new child
started for a later batch (at most once every RESTART_S).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from hub.domain import Quarantined, StoredEvent
from hub.inbox import Message
from hub.ingest import Decoder, decoded_again
from wire.envelope import load_public_key

log = logging.getLogger(__name__)
HEADER = struct.Struct("<II")
ITEM = struct.Struct("<HHI")
LENGTH = struct.Struct("<I")
REFUSAL = struct.Struct("<HH")
ANSWER_WAIT_S = 30.0  # a batch of 200 takes the child about 12 ms
RESTART_S = 5.0
PIPE_BYTES = 1 << 20  # a batch's request fits the pipe: writing it never waits for the child
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux)

Decoded = StoredEvent | Quarantined


def decoder_config(decoder: Decoder) -> bytes:
    keys = {device: bytes(key).hex() for device, key in decoder.device_keys.items()}
    return json.dumps({"hall": decoder.hall, "prefix": decoder.prefix, "device_keys": keys,
                       "max_bytes": decoder.max_bytes}).encode() + b"\n"


def decoder_of(line: bytes) -> Decoder:
    config = json.loads(line)
    return Decoder(config["hall"], config["prefix"],
                   {device: load_public_key(key) for device, key in config["device_keys"].items()},
                   config["max_bytes"])


def encode_request(messages: Sequence[Message]) -> bytes:
    parts = [b""]
    for message in messages:
        topic, at = message.topic.encode("utf-8", "surrogatepass"), message.received_at.isoformat().encode()
        parts += (ITEM.pack(len(topic), len(at), len(message.payload)), topic, at, message.payload)
    parts[0] = HEADER.pack(len(messages), sum(len(part) for part in parts))
    return b"".join(parts)


def answer_request(decoder: Decoder, body: bytes, count: int) -> bytes:
    """The answers to a request's events (its bytes after the header), with their length first."""
    answers = [b""]
    view, at = memoryview(body), 0
    for _ in range(count):
        topic_len, at_len, payload_len = ITEM.unpack_from(view, at)
        at += ITEM.size
        topic = bytes(view[at:at + topic_len]).decode("utf-8", "surrogatepass")
        received_at = datetime.fromisoformat(bytes(view[at + topic_len:at + topic_len + at_len]).decode())
        at += topic_len + at_len
        item = decoder.decode(topic, bytes(view[at:at + payload_len]), received_at)
        at += payload_len
        if isinstance(item, StoredEvent):
            answers.append(b"\x00")
        else:
            reason, detail = item.reason.encode(), item.detail.encode("utf-8", "backslashreplace")
            answers += (b"\x01", REFUSAL.pack(len(reason), len(detail)), reason, detail)
    answers[0] = LENGTH.pack(sum(len(part) for part in answers))
    return b"".join(answers)


def read_answers(messages: Sequence[Message], body: bytes) -> list[Decoded]:
    """The hub's side of an answer: each event accepted (read again) or quarantined."""
    decoded: list[Decoded] = []
    view, at = memoryview(body), 0
    for message in messages:
        refused, at = view[at], at + 1
        if not refused:
            decoded.append(decoded_again(message.topic, message.payload, message.received_at))
            continue
        reason_len, detail_len = REFUSAL.unpack_from(view, at)
        at += REFUSAL.size
        reason = bytes(view[at:at + reason_len]).decode()
        detail = bytes(view[at + reason_len:at + reason_len + detail_len]).decode()
        at += reason_len + detail_len
        decoded.append(Quarantined(message.received_at, message.topic, reason, detail, message.payload))
    if at != len(body):
        raise ValueError(f"an answer of {len(body)} bytes for {len(messages)} events read {at}")
    return decoded


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: its decoder's config, then a request in and its answers out, until the hub
    closes the pipe."""
    decoder = decoder_of(requests.readline())
    while True:
        header = requests.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        count, length = HEADER.unpack(header)
        body = requests.read(length)
        if len(body) < length:
            return
        answers.write(answer_request(decoder, body, count))
        answers.flush()


@dataclass
class Ticket:
    """A batch's events handed over; `DecoderProcess.results` gives them decoded, in order."""

    messages: Sequence[Message]
    child: subprocess.Popen[bytes] | None  # None: decoded here


class DecoderProcess:
    """The hub's side: `submit` a batch's events, then `results` for it (tickets in submission order)."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self._child: subprocess.Popen[bytes] | None = None
        self._wanted = False  # `start` was called: a lost child is started again
        self._next_start = 0.0
        self.decoded_here = 0  # events decoded in the hub's own thread while the child was not there

    def start(self) -> None:
        self._wanted = True
        if self._child is not None or time.monotonic() < self._next_start:
            return
        self._next_start = time.monotonic() + RESTART_S
        try:
            child = subprocess.Popen([sys.executable, "-m", "hub.decoder_process"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        except OSError:
            log.exception("the decoder process could not be started; decoding in the hub's thread")
            return
        assert child.stdin is not None
        with contextlib.suppress(OSError):  # a smaller pipe: a large batch's write waits for the child
            fcntl.fcntl(child.stdin.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        self._child = child
        if self._write(child, decoder_config(self.decoder)):
            log.info("decoder process started (pid %d)", child.pid)

    def submit(self, messages: Sequence[Message]) -> Ticket:
        if self._wanted:
            self.start()
        child = self._child
        if child is None or not messages or not self._write(child, encode_request(messages)):
            return Ticket(messages, None)
        return Ticket(messages, child)

    def results(self, ticket: Ticket) -> list[Decoded]:
        if ticket.child is not None and ticket.child is self._child:
            body = self._read(ticket.child)
            if body is not None:
                try:
                    return read_answers(ticket.messages, body)
                except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
                    self._lost(ticket.child, f"answered wrongly ({exc})")
        self.decoded_here += len(ticket.messages)
        return [self.decoder.decode(m.topic, m.payload, m.received_at) for m in ticket.messages]

    def close(self) -> None:
        self._wanted = False
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()  # the child's read ends: it exits
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()

    def _write(self, child: subprocess.Popen[bytes], data: bytes) -> bool:
        assert child.stdin is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(child.stdin.fileno(), view):]
        except OSError as exc:
            self._lost(child, f"could not be written to ({exc})")
            return False
        return True

    def _read(self, child: subprocess.Popen[bytes]) -> bytes | None:
        assert child.stdout is not None
        fd, deadline = child.stdout.fileno(), time.monotonic() + ANSWER_WAIT_S
        header = self._read_exactly(child, fd, LENGTH.size, deadline)
        if header is None:
            return None
        return self._read_exactly(child, fd, LENGTH.unpack(header)[0], deadline)

    def _read_exactly(self, child: subprocess.Popen[bytes], fd: int, count: int,
                      deadline: float) -> bytes | None:
        data = b""
        while len(data) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._lost(child, f"did not answer within {ANSWER_WAIT_S:.0f} s")
                return None
            chunk = os.read(fd, count - len(data))
            if not chunk:
                self._lost(child, f"ended (exit code {child.poll()})")
                return None
            data += chunk
        return data

    def _lost(self, child: subprocess.Popen[bytes], why: str) -> None:
        log.error("the decoder process %s; decoding in the hub's thread until a new one starts", why)
        if child is self._child:
            self._child = None
        child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


if __name__ == "__main__":
    # A ^C or systemd's SIGTERM reaches the hub's whole group: the child outlives them to decode what
    # the stopping hub still stores, and ends when the hub closes its pipe (or dies, which closes it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
