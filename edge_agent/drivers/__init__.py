"""The registry of device drivers: one folder per device family (codec, driver).

Adding a vendor's device is adding its folder and one factory here. A factory builds the driver for
one configured unit on an open transport; the agent's supervisor owns opening and reopening.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edge_agent.config import BusUnit, CardUnit, DeskUnit, EvaluatorUnit
from edge_agent.drivers.buttonbus.driver import BusDevice, ButtonBusDriver
from edge_agent.drivers.rdm6300.driver import Rdm6300Driver, open_serial
from edge_agent.readings import Reading, Transport
from wire.clock import Clock

OpenTransport = Callable[[str, int], Transport]
Emit = Callable[[Reading], object]
UnitConfig = CardUnit | EvaluatorUnit | DeskUnit | BusUnit


class Driver(Protocol):
    def run(self, stop: object) -> None: ...


def _rdm6300(unit: UnitConfig, transport: Transport, clock: Clock, emit: Emit) -> Rdm6300Driver:
    return Rdm6300Driver(unit.id, transport, clock, emit)


def _buttonbus(unit: UnitConfig, transport: Transport, clock: Clock, emit: Emit) -> ButtonBusDriver:
    if isinstance(unit, BusUnit):
        devices = [BusDevice(m.addr, m.id or f"{unit.id}-{m.addr}") for m in unit.devices]
        return ButtonBusDriver(unit.id, transport, clock, emit, devices, polled=True)
    if isinstance(unit, EvaluatorUnit | DeskUnit):
        return ButtonBusDriver(unit.id, transport, clock, emit, [BusDevice(unit.addr, unit.id)],
                               polled=False)
    raise TypeError(f"unit {unit.id}: the buttonbus driver does not serve kind {unit.kind!r}")


DRIVERS: dict[str, Callable[[UnitConfig, Transport, Clock, Emit], Driver]] = {
    "rdm6300": _rdm6300,
    "buttonbus": _buttonbus,
}

__all__ = ["DRIVERS", "BusDevice", "ButtonBusDriver", "Driver", "OpenTransport", "UnitConfig",
           "open_serial"]
