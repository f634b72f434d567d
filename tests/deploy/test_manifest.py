"""The deployment templates: valid against the official schemas before and after iotedgedev expands them, routes
that name real modules, outputs and inputs, settings the modules accept, devices instead of privileges."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from edgevision.contracts import CameraResult
from tests.conftest import ROOT
from tests.deploy.conftest import (
    BLOB_IMAGE,
    BLOB_MODULE,
    MODULE_FOLDERS,
    PLATFORMS,
    TEMPLATES,
    agent_modules,
    custom_modules,
    desired,
    load_json,
    module_code,
    package_files,
    parse_dotenv,
    placeholders,
    read_inputs,
    routes,
    run_genconfig,
    schema_errors,
    schema_validator,
    sent_outputs,
    solution_copy,
)

ROUTE = re.compile(
    r"^FROM /messages/modules/(?P<source>[\w-]+)/outputs/(?P<output>[\w*-]+)"
    r"(?: WHERE (?P<condition>.+?))?"
    r' INTO (?:BrokeredEndpoint\("/modules/(?P<target>[\w-]+)/inputs/(?P<input>[\w-]+)"\)|(?P<upstream>\$upstream))$'
)


def template(name: str = "deployment.template.json") -> dict:
    return load_json(ROOT / name)


def folder_of(manifest_module: dict) -> str:
    """`${MODULES.CameraCapture}` / `${MODULES.CameraCapture.debug}` -> CameraCapture."""
    image = manifest_module["settings"]["image"]
    match = re.fullmatch(r"\$\{MODULES\.(\w+)(?:\.debug)?\}", image)
    assert match, f"image {image!r} is not a ${{MODULES.<Folder>}} placeholder"
    return match.group(1)


def create_options(module: dict) -> dict:
    options = module["settings"].get("createOptions", {})
    return json.loads(options) if isinstance(options, str) else options


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_validate_against_the_template_schema(name):
    validator = schema_validator("azure-iot-edge-deployment-template-4.0.json")
    assert template(name)["$schema-template"] == "4.0.0"
    assert schema_errors(validator, template(name)) == []


def test_the_schema_check_catches_a_broken_template():
    validator = schema_validator("azure-iot-edge-deployment-template-4.0.json")
    broken = template()
    agent_modules(broken)["camera-capture"]["restartPolicy"] = "sometimes"
    del broken["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    errors = schema_errors(validator, broken)
    assert any("sometimes" in e for e in errors) and any("routes" in e for e in errors), errors


@pytest.mark.slow  # the first use of `expanded` runs iotedgedev six times (about 10 s)
@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_iotedgedev_expands_each_platform_into_a_valid_manifest(expanded, name, platform):
    manifest = expanded[(name, platform)]
    assert schema_errors(schema_validator("azure-iot-edge-deployment-2.0.json"), manifest) == []
    text = json.dumps(manifest)
    leftovers = placeholders(text)
    assert not leftovers, f"placeholders left unexpanded (missing from .env.template?): {leftovers}"
    suffix = f"-{platform}.debug" if "debug" in name else f"-{platform}"
    env = parse_dotenv(ROOT / ".env.template")
    for module in agent_modules(manifest).values():
        assert isinstance(module["settings"]["createOptions"], str)  # what edgeAgent expects
    for module_name, module in custom_modules(manifest).items():
        image = module["settings"]["image"]
        assert image.startswith(env["CONTAINER_REGISTRY_ADDRESS"] + "/"), (module_name, image)
        assert image.endswith(suffix), (module_name, image)
    assert agent_modules(manifest)[BLOB_MODULE]["settings"]["image"].startswith(BLOB_IMAGE + ":")


def test_iotedgedev_fails_on_create_options_that_are_not_json(tmp_path):
    solution = solution_copy(tmp_path)
    broken = template()
    agent_modules(broken)["camera-capture"]["settings"]["createOptions"] = "HostConfig: Privileged"
    (solution / "deployment.template.json").write_text(json.dumps(broken))
    result = run_genconfig(solution, "deployment.template.json", "amd64")
    assert result.returncode != 0
    assert "createOptions of module camera-capture should be an object" in result.stdout + result.stderr


PORTAL_MODULE = "custom-vision-portal"  # optional: deployed stopped


def test_templates_use_current_runtime_and_every_module_folder():
    for name in TEMPLATES:
        manifest = template(name)
        system = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["systemModules"]
        assert system["edgeAgent"]["settings"]["image"] == "mcr.microsoft.com/azureiotedge-agent:1.5"
        assert system["edgeHub"]["settings"]["image"] == "mcr.microsoft.com/azureiotedge-hub:1.5"
        credentials = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["runtime"]["settings"]
        assert credentials["registryCredentials"]["edgevision"] == {
            "username": "$CONTAINER_REGISTRY_USERNAME",
            "password": "$CONTAINER_REGISTRY_PASSWORD",
            "address": "$CONTAINER_REGISTRY_ADDRESS",
        }
        modules = custom_modules(manifest)
        assert set(modules) == {
            "camera-capture",
            "image-classifier-service",
            "sensehat-display",
            "custom-vision-portal",
        }
        assert set(agent_modules(manifest)) == {*modules, BLOB_MODULE}
        assert sorted(folder_of(m) for m in modules.values()) == sorted(MODULE_FOLDERS)
        for module_name, module in modules.items():
            image = module["settings"]["image"]
            assert image.endswith(".debug}") == ("debug" in name), (name, module_name, image)
        for module in agent_modules(manifest).values():
            assert isinstance(module["settings"]["createOptions"], dict), "createOptions must be a JSON object"
        assert modules[PORTAL_MODULE]["status"] == "stopped", "the portal is off until the operator turns it on"


def test_no_module_is_privileged_and_devices_are_mapped():
    modules = agent_modules(template())
    for name, module in modules.items():
        host = create_options(module).get("HostConfig", {})
        assert not host.get("Privileged"), f"{name} must reach its devices through Devices, not Privileged"
        assert host.get("Init") is True, f"{name}: an init process forwards SIGTERM and reaps children"
    camera = create_options(modules["camera-capture"])["HostConfig"]
    assert {"PathOnHost": "$CAMERA_DEVICE", "PathInContainer": "/dev/video0", "CgroupPermissions": "rwm"} in camera[
        "Devices"
    ]
    assert camera["PortBindings"] == {"5012/tcp": [{"HostIp": "$VIEWER_HOST_IP", "HostPort": "5012"}]}
    display = create_options(modules["sensehat-display"])["HostConfig"]
    assert {d["PathInContainer"] for d in display["Devices"]} == {"$SENSEHAT_FB", "/dev/i2c-1"}
    scorer = create_options(modules["image-classifier-service"]).get("HostConfig", {})
    assert "PortBindings" not in scorer, "the scorer is reached on the edge network, not through a host port"


@pytest.mark.parametrize("name", TEMPLATES)
def test_routes_name_existing_modules_outputs_and_inputs(name):
    manifest = template(name)
    modules = agent_modules(manifest)
    seen = set()
    for route_name, route in routes(manifest).items():
        match = ROUTE.match(route)
        assert match, f"route {route_name} does not parse: {route}"
        source = match["source"]
        assert source in modules, f"{route_name}: no module {source}"
        outputs = sent_outputs(module_code(folder_of(modules[source])).package)
        assert match["output"] in outputs, f"{route_name}: {source} sends on {sorted(outputs)}, not {match['output']}"
        if match["target"]:
            assert match["target"] in modules, f"{route_name}: no module {match['target']}"
            inputs = read_inputs(module_code(folder_of(modules[match["target"]])).package)
            assert match["input"] in inputs, f"{route_name}: {match['target']} reads {sorted(inputs)}"
        seen.add((source, match["output"], match["target"] or "$upstream", bool(match["condition"])))
    assert seen == {
        ("camera-capture", "output1", "sensehat-display", False),
        ("camera-capture", "output1", "$upstream", True),
        ("camera-capture", "captures", "$upstream", False),
    }


def test_the_upstream_filter_reads_a_number_the_camera_puts_in_its_body():
    """`WHERE $body.topProbability >= x` only works on a JSON body that carries topProbability."""
    route = routes(template())["cameraToUpstream"]
    field = re.search(r"\$body\.(\w+)", route).group(1)
    package = module_code("CameraCapture").package
    sources = "".join(p.read_text() for p in package_files(package))
    assert "CameraResult(" in sources, "the camera does not build its output1 body as the CameraResult contract"
    schema = CameraResult.model_json_schema()
    assert field in schema["required"], f"the camera's output1 body may lack {field}"
    assert schema["properties"][field].get("type") == "number", f"{field} is not a number in the camera's body"
    # edgeHub evaluates $body only for messages sent as application/json, utf-8: the hub wrapper sets both
    hub = (ROOT / "edgevision" / "hub" / "client.py").read_text()
    assert '"application/json"' in hub and '"utf-8"' in hub


def test_store_and_forward_keeps_captures_longest():
    hub = template()["modulesContent"]["$edgeHub"]["properties.desired"]
    assert hub["schemaVersion"] == "1.2"  # per-route priority and TTL
    default = hub["storeAndForwardConfiguration"]["timeToLiveSecs"]
    ttl = {name: r.get("timeToLiveSecs", default) for name, r in hub["routes"].items()}
    priority = {name: r.get("priority", 0) for name, r in hub["routes"].items()}
    assert ttl["cameraToDisplay"] < ttl["cameraToUpstream"] < ttl["capturesToUpstream"]
    assert priority["capturesToUpstream"] < priority["cameraToUpstream"]  # 0 is the highest
    assert 3600 <= default <= 7 * 86400


@pytest.mark.slow  # shares `expanded` with the test above
@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("folder", MODULE_FOLDERS)
def test_the_module_accepts_its_env_and_desired_properties(expanded, name, folder):
    """Start-up settings from the manifest's env (plus the image's ENV) parse, and every desired property is a
    live setting of that module, with a value it accepts."""
    code = module_code(folder)
    manifest = expanded[(name, "arm32v7")]
    module_name = next(n for n, m in custom_modules(template(name)).items() if folder_of(m) == folder)
    module = agent_modules(manifest)[module_name]
    environ = {k: str(v["value"]) for k, v in module.get("env", {}).items()}
    environ.update(image_env(folder))
    assert set(environ) <= set(code.settings.env_names()), (
        f"unknown variables: {set(environ) - set(code.settings.env_names())}"
    )
    settings = code.settings.from_env(environ)
    changes = desired(manifest, module_name)
    for key in changes:
        assert key in code.settings.env_names(), f"{module_name}: desired property {key} is not one of its settings"
        field = code.settings.env_names()[key]
        assert field not in code.settings.static_fields, f"{module_name}: {key} cannot change while running"
    updated = settings.updated(changes)
    reported = updated.reported()
    for key, value in changes.items():
        reported_value = reported[key]
        if isinstance(reported_value, list):
            reported_value = ",".join(reported_value)
        assert str(reported_value).lower() == str(value).lower() or _same_number(reported_value, value), key


@pytest.mark.slow  # shares `expanded` with the tests above
@pytest.mark.parametrize("name", TEMPLATES)
def test_the_shipped_env_opens_the_viewer_to_nobody(expanded, name):
    """With .env.template as shipped (no VIEWER_KEY) the viewer's port is published on the device's loopback
    only and the module listens on its own loopback; a key opens it where VIEWER_HOST says."""
    from edgevision.capture.viewer import listen_host

    manifest = expanded[(name, "arm32v7")]
    camera = agent_modules(manifest)["camera-capture"]
    binding = json.loads(camera["settings"]["createOptions"])["HostConfig"]["PortBindings"]["5012/tcp"]
    assert binding == [{"HostIp": "127.0.0.1", "HostPort": "5012"}]
    environ = {k: str(v["value"]) for k, v in camera["env"].items()} | image_env("CameraCapture")
    assert environ["VIEWER_KEY"] == ""
    settings = module_code("CameraCapture").settings.from_env(environ)
    assert settings.viewer_key is None
    assert listen_host(settings.viewer_host, None) == "127.0.0.1"
    assert listen_host("0.0.0.0", "a-key") == "0.0.0.0"


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def image_env(folder: str) -> dict[str, str]:
    """ENV NAME=value pairs of the module's amd64 Dockerfile that are module settings (not PYTHON*/PIP*/PATH)."""
    text = (ROOT / "modules" / folder / "Dockerfile.amd64").read_text().replace("\\\n", " ")
    pairs = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            pairs.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return {k: v for k, v in pairs.items() if not k.startswith(("PYTHON", "PIP")) and k != "PATH"}


def test_desired_property_values_are_checked_by_the_module():
    """The check above can fail: a value the camera rejects is reported, naming the property."""
    from edgevision.config import ConfigError

    code = module_code("CameraCapture")
    settings = code.settings.from_env({"VIDEO_PATH": "/dev/video0"})
    with pytest.raises(ConfigError, match="CAPTURE_THRESHOLD"):
        settings.updated({"CAPTURE_THRESHOLD": "often"})


def test_the_camera_reaches_the_scorer_by_its_module_name():
    modules = agent_modules(template())
    endpoint = modules["camera-capture"]["env"]["IMAGE_PROCESSING_ENDPOINT"]["value"]
    assert endpoint == "http://image-classifier-service:80/image"
    scorer = module_code("ImageClassifierService").settings
    assert scorer.model_fields["port"].default == 80
    assert "image-classifier-service" in modules


def test_debug_template_needs_no_devices_and_opens_debug_ports():
    base = custom_modules(template())
    debug = custom_modules(template("deployment.debug.template.json"))
    host_ports = set()
    for name in base:
        options = create_options(debug[name])
        assert "5678/tcp" in options["ExposedPorts"]
        binding = options["HostConfig"]["PortBindings"]["5678/tcp"][0]["HostPort"]
        host_ports.add(binding)
        assert "Devices" not in options["HostConfig"], f"{name}: a development machine has no camera or Sense HAT"
        assert debug[name]["startupOrder"] == base[name]["startupOrder"]
    assert len(host_ports) == len(base), "each module needs its own host port for the debugger"


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_local_runtime_accepts_the_templates(name):
    """`edgevision run` (the local edge runtime) reads the same templates: they must pass its checks too."""
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", name, "--env-file", ".env.template", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 5 modules" in result.stdout


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_blob_module_is_on_the_edge_network_only_and_forwards_the_captures(name):
    """Azure Blob Storage on IoT Edge: a lowercase module name (the camera reaches it by that host name), its
    data on a volume at /blobroot, port 11002 exposed on the edge network and published on no host port, and
    desired properties that upload the camera's container to the cloud and free the device."""
    manifest = template(name)
    names = [n for n, m in agent_modules(manifest).items() if m["settings"]["image"].startswith(BLOB_IMAGE + ":")]
    assert names == [BLOB_MODULE] and BLOB_MODULE.islower()  # blob module names must be lowercase
    module = agent_modules(manifest)[BLOB_MODULE]
    options = create_options(module)
    assert options["ExposedPorts"] == {"11002/tcp": {}}
    assert "PortBindings" not in options["HostConfig"], "the blob module is for the edge network only"
    assert any(bind.split(":")[1] == "/blobroot" for bind in options["HostConfig"]["Binds"])
    assert set(module["env"]) == {"LOCAL_STORAGE_ACCOUNT_NAME", "LOCAL_STORAGE_ACCOUNT_KEY"}

    twin = desired(manifest, BLOB_MODULE)
    upload = twin["deviceToCloudUploadProperties"]
    assert upload["uploadOn"] is True and upload["uploadOrder"] in ("OldestFirst", "NewestFirst")
    assert isinstance(upload["deleteAfterUpload"], bool) and upload["cloudStorageConnectionString"]
    auto_delete = twin["deviceAutoDeleteProperties"]
    assert auto_delete["deleteOn"] is True and isinstance(auto_delete["deleteAfterMinutes"], int)
    assert auto_delete["retainWhileUploading"] is True

    camera = agent_modules(manifest)["camera-capture"]
    connection = camera["env"]["BLOB_CONNECTION_STRING"]["value"]
    parts = dict(part.split("=", 1) for part in connection.split(";"))
    account = module["env"]["LOCAL_STORAGE_ACCOUNT_NAME"]["value"]
    assert parts["BlobEndpoint"] == f"http://{BLOB_MODULE}:11002/{account}"
    assert parts["AccountName"] == account
    assert parts["AccountKey"] == module["env"]["LOCAL_STORAGE_ACCOUNT_KEY"]["value"]
    container = module_code("CameraCapture").settings.model_fields["blob_container"].default
    assert "BLOB_CONTAINER" not in camera["env"]
    assert set(upload["storageContainersForUpload"]) == {container}, "the module must forward what the camera writes"
    startup = {n: m["startupOrder"] for n, m in agent_modules(manifest).items()}
    assert startup[BLOB_MODULE] < startup["camera-capture"]


def test_the_shipped_blob_settings_are_ones_the_module_accepts():
    """.env.template's account: a valid storage account name and a base64 key of 64 bytes."""
    import base64

    env = parse_dotenv(ROOT / ".env.template")
    assert re.fullmatch(r"[a-z0-9]{3,24}", env["BLOB_ACCOUNT_NAME"])
    assert len(base64.b64decode(env["BLOB_ACCOUNT_KEY"], validate=True)) == 64
