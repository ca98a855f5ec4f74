"""Ed25519 checks in a child process of the hub's own (`python -m hub.sigcheck`).

The signature check is the largest cost of ingest that needs nothing of the hub: about 38 µs of the
120 µs a message costs the hub on one core. In one process it takes turns with the store (the GIL:
a check on a second thread made the hub slower, measured), so the run thread hands a batch's checks
to this child and stores the batch before it meanwhile (hub/service.py): the checks of one batch
run on a second core while the last one is stored.

Between them, on the child's stdin and stdout (the hub's pipes, never the network's):
- request: "<II" count and byte length of the rest, then per check "<32s64sI" public key,
  signature and message length, followed by the message;
- answer: `count` bytes, 1 for a signature that holds, 0 for one that does not.

If the child cannot be started, dies, or does not answer within ANSWER_WAIT_S, the batch is
checked in the hub's own thread (the same PyNaCl call, so the same answers), the failure logged,
and a new child started for a later batch (at most once every RESTART_S).
"""

from __future__ import annotations

import contextlib
import fcntl
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
from typing import BinaryIO, NamedTuple

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

log = logging.getLogger(__name__)
HEADER = struct.Struct("<II")
ITEM = struct.Struct("<32s64sI")
ANSWER_WAIT_S = 30.0  # a batch of 200 takes the child about 8 ms
RESTART_S = 5.0
PIPE_BYTES = 1 << 20  # a batch's request fits the pipe: writing it never waits for the child
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in the module only from Python 3.10 on Linux


class Check(NamedTuple):
    public_key: bytes  # 32 bytes
    signature: bytes  # 64 bytes
    message: bytes  # the signed bytes


def holds(check: Check) -> bool:
    """The check itself (the child's, and the hub's own when the child is not there)."""
    try:
        crypto_sign_open(check.signature + check.message, check.public_key)
    except BadSignatureError:
        return False
    return True


def encode_request(checks: Sequence[Check]) -> bytes:
    parts = [b""]
    for check in checks:
        parts.append(ITEM.pack(check.public_key, check.signature, len(check.message)))
        parts.append(check.message)
    parts[0] = HEADER.pack(len(checks), sum(len(part) for part in parts))
    return b"".join(parts)


def answer_request(body: bytes, count: int) -> bytes:
    """The answers to a request's checks (its bytes after the header)."""
    answers = bytearray(count)
    view, at = memoryview(body), 0
    for index in range(count):
        key, signature, length = ITEM.unpack_from(view, at)
        at += ITEM.size
        answers[index] = holds(Check(key, signature, bytes(view[at:at + length])))
        at += length
    return bytes(answers)


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: a request in, its answers out, until the hub closes the pipe."""
    while True:
        header = requests.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        count, length = HEADER.unpack(header)
        body = requests.read(length)
        if len(body) < length:
            return
        answers.write(answer_request(body, count))
        answers.flush()


@dataclass
class Ticket:
    """A batch's checks handed over; `SignatureChecker.answers` gives their answers, in order."""

    checks: Sequence[Check]
    child: subprocess.Popen[bytes] | None  # None: checked here


class SignatureChecker:
    """The hub's side: `submit` a batch's checks, then `answers` for it (tickets in submission order)."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._wanted = False  # `start` was called: a lost child is started again
        self._next_start = 0.0
        self.checked_here = 0  # checks made in the hub's own thread because the child was not there

    def start(self) -> None:
        self._wanted = True
        if self._child is not None or time.monotonic() < self._next_start:
            return
        self._next_start = time.monotonic() + RESTART_S
        try:
            child = subprocess.Popen([sys.executable, "-m", "hub.sigcheck"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        except OSError:
            log.exception("the signature checker could not be started; checking in the hub's thread")
            return
        assert child.stdin is not None
        with contextlib.suppress(OSError):  # a smaller pipe: a large batch's write waits for the child
            fcntl.fcntl(child.stdin.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        self._child = child
        log.info("signature checker started (pid %d)", child.pid)

    def submit(self, checks: Sequence[Check]) -> Ticket:
        if self._wanted:
            self.start()
        child = self._child
        if child is None or not checks:
            return Ticket(checks, None)
        assert child.stdin is not None
        try:
            _write_all(child.stdin.fileno(), encode_request(checks))
        except OSError:
            self._lost(child, "could not be written to")
            return Ticket(checks, None)
        return Ticket(checks, child)

    def answers(self, ticket: Ticket) -> list[bool]:
        if ticket.child is not None and ticket.child is self._child:
            answered = self._read(ticket.child, len(ticket.checks))
            if answered is not None:
                return [byte == 1 for byte in answered]
        self.checked_here += len(ticket.checks)
        return [holds(check) for check in ticket.checks]

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

    def _read(self, child: subprocess.Popen[bytes], count: int) -> bytes | None:
        assert child.stdout is not None
        fd, data = child.stdout.fileno(), b""
        deadline = time.monotonic() + ANSWER_WAIT_S
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
        log.error("the signature checker %s; checking in the hub's thread until a new one starts", why)
        if child is self._child:
            self._child = None
        child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to the hub's group: the hub closes the pipe
    serve(sys.stdin.buffer, sys.stdout.buffer)
