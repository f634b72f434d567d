"""A real IoT Edge stand-in for edgevision.hub: mosquitto with TLS, the workload API and the runtime's router,
so `connect()` creates a real azure-iot-device ModuleClient in the test process."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgevision.runtime import certs
from edgevision.runtime.broker import BrokerError, ModuleBroker, find_mosquitto, free_addresses
from edgevision.runtime.console import Console
from edgevision.runtime.router import Router, UpstreamLog
from edgevision.runtime.routes import parse_route
from edgevision.runtime.twins import TwinStore
from edgevision.runtime.workload import API_VERSION, WorkloadAPI

MODULE = "probe"
FLUSHER = "flusher"  # a second module: two clients with one identity would take each other's session
DEVICE = "hub-test-device"
ROUTES = [
    parse_route(
        "loop", f'FROM /messages/modules/{MODULE}/outputs/loop INTO BrokeredEndpoint("/modules/{MODULE}/inputs/in1")'
    ),
    parse_route("up", "FROM /messages/* INTO $upstream"),
]


@dataclass
class Edge:
    router: Router
    twins: TwinStore
    upstream: Path
    environs: dict[str, dict[str, str]]
    brokers: dict[str, ModuleBroker]

    @property
    def environ(self) -> dict[str, str]:
        return self.environs[MODULE]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    try:
        mosquitto = find_mosquitto()
    except BrokerError as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("edge")
    scratch = Path(tempfile.mkdtemp(prefix="edgevision-hub-"))  # short unix socket path
    addresses = dict(zip((MODULE, FLUSHER), free_addresses(2), strict=True))
    ca = certs.generate(scratch / "certs", list(addresses.values()))
    workload = WorkloadAPI(scratch / "workload.sock", ca.ca_pem())
    workload.start()
    brokers = {}
    for name, address in addresses.items():
        brokers[name] = ModuleBroker(name, address, ca, scratch / name, folder / f"{name}.log", mosquitto)
        brokers[name].start()
    console = Console(io.StringIO())
    twins = TwinStore(folder / "twins")
    twins.add(MODULE, {"THRESHOLD": 0.7, "label": "start"})
    router = Router(DEVICE, ROUTES, twins, UpstreamLog(folder / "upstream.jsonl", console), ca.ca, console)
    environs = {}
    for name, address in addresses.items():
        router.add_module(name, address)
        environs[name] = {
            "IOTEDGE_IOTHUBHOSTNAME": "hub-test.local.azure-devices.net",
            "IOTEDGE_DEVICEID": DEVICE,
            "IOTEDGE_MODULEID": name,
            "IOTEDGE_GATEWAYHOSTNAME": address,
            "IOTEDGE_MODULEGENERATIONID": workload.add_module(name),
            "IOTEDGE_WORKLOADURI": workload.uri,
            "IOTEDGE_APIVERSION": API_VERSION,
        }
    router.start()
    try:
        yield Edge(router, twins, folder / "upstream.jsonl", environs, brokers)
    finally:
        router.stop()
        for broker in brokers.values():
            broker.stop()
        workload.stop()
        shutil.rmtree(scratch, ignore_errors=True)
