"""Azurite (the npm package `azurite`, blob service only) as the local stand-in for Azure Blob Storage on IoT Edge.

The module `mcr.microsoft.com/azure-blob-storage` serves one account, named by LOCAL_STORAGE_ACCOUNT_NAME with
the key LOCAL_STORAGE_ACCOUNT_KEY, on port 11002, storing under /blobroot. Locally `python -m
edgevision.runtime.azurite` reads the same variables (plus the runtime's BLOB_HOST/BLOB_PORT and the local folder
of /blobroot) and execs `azurite-blob` with them. scripts/setup.sh installs Azurite into `.node/`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgevision.errors import EdgeVisionError

AZURITE_VERSION = "3.35.0"
BLOB_ROOT = "/blobroot"
PROJECT_NODE = Path(__file__).resolve().parents[2] / ".node" / "node_modules" / ".bin" / "azurite-blob"


class AzuriteError(EdgeVisionError):
    """Azurite is not installed or its settings are incomplete."""


def find_azurite() -> Path:
    """The `azurite-blob` launcher: the project's `.node/` (scripts/setup.sh), else PATH."""
    if PROJECT_NODE.exists():
        return PROJECT_NODE
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise AzuriteError(
        f"azurite-blob not found: run scripts/setup.sh (it installs azurite@{AZURITE_VERSION} into .node/)"
    )


def azurite_command(location: Path, host: str, port: int) -> list[str]:
    """Blob service only, no telemetry (no network beyond the loopback), data kept in `location`."""
    return [
        str(find_azurite()),
        "--blobHost",
        host,
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--disableTelemetry",
        "--silent",
        "--skipApiVersionCheck",
    ]


def azurite_env(account: str, key: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Azurite's AZURITE_ACCOUNTS (`name:key`) for one account, as the IoT Edge module has."""
    env = dict(os.environ if base is None else base)
    env["AZURITE_ACCOUNTS"] = f"{account}:{key}"
    return env


def connection_string(account: str, key: str, endpoint: str) -> str:
    """The connection string a client uses for `account` at `endpoint` (`http://host:port`)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
        f"BlobEndpoint={endpoint.rstrip('/')}/{account};"
    )


def list_blobs(connection: str) -> list[dict[str, Any]]:
    """Every blob of every container: name (`container/blob`), size and metadata, sorted by name."""
    from azure.storage.blob import BlobServiceClient

    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO
    service = BlobServiceClient.from_connection_string(connection, api_version="2019-07-07", retry_total=1)
    blobs = []
    for container in service.list_containers():
        client = service.get_container_client(container.name)
        for blob in client.list_blobs(include=["metadata"]):
            blobs.append({"name": f"{container.name}/{blob.name}", "size": blob.size, "metadata": blob.metadata or {}})
    return sorted(blobs, key=lambda b: b["name"])


def main(environ: Mapping[str, str] | None = None) -> None:
    """The blob module's entry point in the local runtime: exec Azurite with the module's settings."""
    environ = os.environ if environ is None else environ
    account = environ.get("LOCAL_STORAGE_ACCOUNT_NAME", "")
    key = environ.get("LOCAL_STORAGE_ACCOUNT_KEY", "")
    if not account or not key:
        print("azurite: LOCAL_STORAGE_ACCOUNT_NAME and LOCAL_STORAGE_ACCOUNT_KEY must be set", file=sys.stderr)
        raise SystemExit(2)
    mounts = json.loads(environ.get("EDGEVISION_MOUNTS") or "{}")
    location = Path(mounts.get(BLOB_ROOT) or environ.get("BLOB_ROOT") or "blobroot")
    location.mkdir(parents=True, exist_ok=True)
    try:
        host, port = environ.get("BLOB_HOST", "127.0.0.1"), int(environ.get("BLOB_PORT", "11002"))
        command = azurite_command(location, host, port)
    except AzuriteError as exc:
        print(f"azurite: {exc}", file=sys.stderr)
        raise SystemExit(127) from None
    print(f"azurite: account {account} on http://{command[2]}:{command[4]}/{account}, data in {location}", flush=True)
    os.execve(command[0], command, azurite_env(account, key, environ))


if __name__ == "__main__":
    main()
