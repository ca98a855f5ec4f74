"""The registry of device drivers: one folder per device family (codec, driver).

Adding a vendor's device is adding its folder and one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.drivers.rdm6300.driver import Rdm6300Driver, open_serial
from edge_agent.readings import Transport

OpenTransport = Callable[[str, int], Transport]

DRIVERS: dict[str, type[Rdm6300Driver]] = {
    "rdm6300": Rdm6300Driver,
}

__all__ = ["DRIVERS", "OpenTransport", "open_serial"]
