"""The only code that touches azure-iot-device: outputs, inputs, twin desired and reported properties.

`connect(module)` returns an `EdgeHub` (a real `ModuleClient`, created from the IoT Edge environment exactly as
on a device) when IoT Edge variables are present, and otherwise a `LocalHub` that logs what would have been
sent, so a module also runs as a plain process on a laptop.
"""

from edgevision.hub.client import EDGE_VARIABLES, EdgeHub, Hub, InputMessage, LocalHub, connect, edge_environment

__all__ = ["EDGE_VARIABLES", "EdgeHub", "Hub", "InputMessage", "LocalHub", "connect", "edge_environment"]
