"""ButtonBus HELLO, frame versions 1 and 2: the flags byte (bit 0: just powered up), and the driver
forgetting the last KEY seq only at power-up, through a real pseudo-terminal."""

from __future__ import annotations

import pytest

from device_sims.buttonbus import ButtonBox, PointToPointSim
from edge_agent.drivers.buttonbus.codec import HELLO, Frame, FrameParser, Hello, parse_hello
from edge_agent.drivers.buttonbus.driver import BusDevice
from edge_agent.readings import ButtonPress, DeviceHello
from tests.test_buttonbus_pty import HALL_TIME, running_driver, wait_until

EVALUATOR = 1

# (frame on the wire, address, the HELLO in it, version, powered up); CRC-16/MODBUS low byte first.
# The three for address 1 are docs/PROTOCOL.md's (section 2.2).
VECTORS = [
    ("aa 55 01 01 04 01 05 01 00 eb bc", 1, Hello(1, 5, 1, 0), 1, True),  # version 1: no flags byte
    ("aa 55 01 01 05 01 05 01 00 01 3c 5e", 1, Hello(1, 5, 1, 0, 0x01), 2, True),
    ("aa 55 01 01 05 01 05 01 00 00 fd 9e", 1, Hello(1, 5, 1, 0, 0x00), 2, False),
    ("aa 55 07 01 05 02 07 01 04 01 fb 0c", 7, Hello(2, 7, 1, 4, 0x01), 2, True),  # power-up
    ("aa 55 07 01 05 02 07 01 04 00 3a cc", 7, Hello(2, 7, 1, 4, 0x00), 2, False),  # periodic
    ("aa 55 03 01 05 01 03 02 01 fe 0c df", 3, Hello(1, 3, 2, 1, 0xFE), 2, False),  # reserved bits
]


@pytest.mark.parametrize(("wire", "addr", "hello", "version", "powered_up"), VECTORS)
def test_hello_vectors(wire: str, addr: int, hello: Hello, version: int, powered_up: bool) -> None:
    (frame,) = FrameParser().feed(bytes.fromhex(wire))
    assert frame == Frame(addr, HELLO, frame.payload)
    parsed = parse_hello(frame.payload)
    assert parsed == hello
    assert (parsed.version, parsed.powered_up) == (version, powered_up)


def test_hello_of_another_length_is_refused() -> None:
    for bad in (b"\x01\x05\x01", b"\x01\x05\x01\x00\x01\x00", b""):
        with pytest.raises(ValueError, match="4 bytes .version 1. or 5 .version 2."):
            parse_hello(bad)


def test_the_simulator_flags_power_up_only() -> None:
    box = ButtonBox(7, 2, firmware=(1, 4))
    assert box.hello_frame() == bytes.fromhex(VECTORS[3][0])  # at power-up
    assert box.hello_frame() == bytes.fromhex(VECTORS[4][0])  # every 10 s after
    box.restart()
    assert box.hello_frame() == bytes.fromhex(VECTORS[3][0])
    old = ButtonBox(1, EVALUATOR, hello_version=1)
    assert old.hello_frame() == old.hello_frame() == bytes.fromhex(VECTORS[0][0])


@pytest.mark.parametrize(("hello_version", "presses"), [(2, 1), (1, 2)])
def test_ack_lost_as_a_periodic_hello_goes_out(hello_version: int, presses: int) -> None:
    """The KEY's ACK is lost; the device sends its periodic HELLO, then the KEY again. Version 2 says
    the HELLO is not a power-up, so the repeat counts once; a version 1 HELLO cannot say, so the
    driver must take it for a power-up and the repeat counts as a new press (the old limit)."""
    with PointToPointSim(ButtonBox(1, EVALUATOR, hello_version=hello_version)) as sim:
        with running_driver(sim.path, [BusDevice(1, "eval-01")], polled=False) as run:
            sim.restart()  # a power-up HELLO now that the port is open (the first may have been flushed)
            wait_until(lambda: run.of_type(DeviceHello))
            sim.drop_acks(1)
            sim.hello_before_next_repeat()
            sim.press(None, 4)
            assert sim.wait_acked(3.0)
            wait_until(lambda: run.driver.stats.acks_sent == 2)
        assert run.errors == []
        assert (sim.box.repeats_sent, sim.box.acks_received, sim.box.keys_lost) == (1, 2, 0)
        assert run.presses() == [ButtonPress("eval-01", 1, 4, HALL_TIME)] * presses
        kinds = [type(r).__name__ for r in run.readings if isinstance(r, ButtonPress | DeviceHello)]
        expected = ["DeviceHello", "ButtonPress", "DeviceHello"] + ["ButtonPress"] * (presses - 1)
        assert kinds[kinds.index("ButtonPress") - 1:] == expected  # from the power-up HELLO on
        assert (run.driver.stats.presses, run.driver.stats.repeats) == (presses, 2 - presses)
