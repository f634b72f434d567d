"""Manifests: templates and expanded manifests load; bad ones are rejected with the line and the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgevision.runtime import manifest
from edgevision.runtime.demo import DEMO_MANIFEST
from edgevision.runtime.images import BUILTIN_IMAGES, ImageError, image_key, resolve_image
from edgevision.runtime.manifest import ManifestError

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """{
  "modulesContent": {
    "$edgeAgent": {
      "properties.desired": {
        "schemaVersion": "1.1",
        "runtime": {"settings": {"registryCredentials": {"r": {"username": "$CONTAINER_REGISTRY_USERNAME"}}}},
        "modules": {
          "image-classifier-service": {
            "type": "docker", "status": "running", "restartPolicy": "always", "startupOrder": 1,
            "settings": {"image": "${MODULES.ImageClassifierService}"},
            "env": {"MODEL_DIR": {"value": "$MODEL_DIR"}}
          },
          "camera-capture": {
            "type": "docker", "status": "running", "restartPolicy": "on-failure", "startupOrder": 2,
            "settings": {"image": "${MODULES.CameraCapture.debug}",
                         "createOptions": {"HostConfig": {"Binds": ["captures:/data/captures"]}}},
            "env": {"VIDEO_PATH": {"value": "${VIDEO}"},
                    "IMAGE_PROCESSING_ENDPOINT": {"value": "http://image-classifier-service:80/image"},
                    "FRAME_RATE": {"value": 2}}
          },
          "sensehat-display": {
            "type": "docker", "settings": {"image": "${MODULES.SenseHatDisplay}"}
          }
        }
      }
    },
    "$edgeHub": {
      "properties.desired": {
        "schemaVersion": "1.2",
        "routes": {
          "toDisplay": "FROM /messages/modules/camera-capture/outputs/output1 INTO BrokeredEndpoint(\\"/modules/sensehat-display/inputs/input1\\")",
          "toUpstream": {"route": "FROM /messages/modules/camera-capture/outputs/* WHERE $body.topProbability >= $MIN INTO $upstream", "priority": 2, "timeToLiveSecs": 60}
        }
      }
    },
    "camera-capture": {"properties.desired": {"CAPTURE_TAGS": "$TAGS"}},
    "sensehat-display": {"properties.desired": {"THRESHOLD": 0.6}}
  }
}
"""  # noqa: E501
STARTUP2 = '"startupOrder": 2'
TO_DISPLAY = '"toDisplay"'
PRIORITY = '"priority"'
FRAME_RATE = '"FRAME_RATE"'
VARIABLES = {"MODEL_DIR": "", "VIDEO": "/videos/clip.avi", "MIN": "0.5", "TAGS": "zebra"}


def write(tmp_path: Path, text: str, name: str = "deployment.template.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(text: str, variables: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, "m.json", VARIABLES if variables is None else variables)
    return caught.value.problems


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_template_expands_modules_and_variables() -> None:
    deployment = manifest.parse(TEMPLATE, "m.json", VARIABLES)
    assert [m.name for m in deployment.ordered_modules()] == [
        "image-classifier-service",
        "camera-capture",
        "sensehat-display",
    ]
    camera = deployment.modules["camera-capture"]
    assert camera.local is BUILTIN_IMAGES["cameracapture"]
    assert camera.env["VIDEO_PATH"] == "/videos/clip.avi"
    assert camera.env["FRAME_RATE"] == "2"  # JSON numbers become their JSON spelling
    assert camera.restart_policy == "on-failure"
    assert camera.binds == [("captures", "/data/captures")]
    assert deployment.modules["sensehat-display"].restart_policy == "always"  # IoT Edge's default
    assert deployment.modules["image-classifier-service"].env["MODEL_DIR"] == ""
    routes = {r.name: r for r in deployment.routes}
    assert routes["toUpstream"].priority == 2 and routes["toUpstream"].time_to_live == 60
    assert routes["toUpstream"].text.endswith(">= 0.5 INTO $upstream")
    assert deployment.desired["camera-capture"] == {"CAPTURE_TAGS": "zebra"}
    assert deployment.desired["sensehat-display"] == {"THRESHOLD": 0.6}


def test_env_file_beside_the_manifest_and_environment_override(tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE)
    (tmp_path / ".env").write_text(
        '# settings\nexport VIDEO="/from/dotenv.avi"\nMIN=0.7\nTAGS=deer # comment\nMODEL_DIR=\n'
    )
    variables = manifest.template_variables(path, environ={"MIN": "0.9"})
    deployment = manifest.load(path, variables)
    assert deployment.modules["camera-capture"].env["VIDEO_PATH"] == "/from/dotenv.avi"
    assert deployment.desired["camera-capture"] == {"CAPTURE_TAGS": "deer"}
    assert {r.name: r for r in deployment.routes}["toUpstream"].text.endswith(">= 0.9 INTO $upstream")


def test_env_file_is_read_as_python_dotenv_reads_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("VIDEO=\"/a b.avi\" # where the clip is\nMIN='0.5'  # quoted\nTAGS=${MIN}-x\nBARE\nMODEL_DIR=\n")
    assert manifest.read_env_file(env) == {"VIDEO": "/a b.avi", "MIN": "0.5", "TAGS": "0.5-x", "MODEL_DIR": ""}


def test_env_file_line_python_dotenv_cannot_parse_is_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('VIDEO=v.avi\nnot a "setting\nMIN=1\n')
    with pytest.raises(ManifestError) as caught:
        manifest.read_env_file(env)
    assert caught.value.problems == [f"{env}:2: expected KEY=VALUE"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"high"', "priority must be an integer 0-9, not 'high'"),
        ("2.5", "priority must be an integer 0-9, not 2.5"),
        ("true", "priority must be an integer 0-9, not True"),
        ("10", "priority must be an integer 0-9, not 10"),
    ],
)
def test_a_route_priority_that_is_not_an_integer_is_one_problem(value: str, reason: str) -> None:
    bad = TEMPLATE.replace('"priority": 2', f'"priority": {value}')
    line = line_of(bad, PRIORITY)
    assert problems(bad) == [f"m.json:{line}: route toUpstream: {reason}"]


def test_cli_names_a_bad_route_priority_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE.replace('"priority": 2', '"priority": "high"'))
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", str(path), "--check", "--set", "VIDEO=v.avi",
         "--set", "MIN=0.5", "--set", "TAGS=zebra", "--set", "MODEL_DIR="],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "route toUpstream: priority must be an integer 0-9, not 'high'" in result.stderr


def test_expanded_manifest_with_string_create_options_and_az_content_wrapper() -> None:
    data = json.loads(manifest.parse.__globals__["json"].dumps(json.loads(TEMPLATE)))
    modules = data["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    modules["camera-capture"]["settings"] = {
        "image": "myregistry.azurecr.io/edgevision-camera-capture:0.1.0-amd64.debug",
        "createOptions": json.dumps({"HostConfig": {"Binds": ["/srv/captures:/data/captures"]}})[:20],
        "createOptions01": json.dumps({"HostConfig": {"Binds": ["/srv/captures:/data/captures"]}})[20:],
    }
    modules["image-classifier-service"]["settings"]["image"] = "reg.io/imageclassifierservice:0.1.0-arm32v7"
    text = json.dumps({"content": data}, indent=2)
    deployment = manifest.parse(text, "deployment.amd64.json", VARIABLES)
    assert deployment.modules["camera-capture"].binds == [("/srv/captures", "/data/captures")]
    assert deployment.modules["camera-capture"].local.name == "CameraCapture"
    assert deployment.modules["image-classifier-service"].local.name == "ImageClassifierService"


def test_invalid_json_names_line_and_column() -> None:
    broken = TEMPLATE.replace('"restartPolicy": "on-failure",', '"restartPolicy": "on-failure"')
    (problem,) = problems(broken)
    assert problem.startswith(f"m.json:{line_of(broken, STARTUP2)}:")
    assert "invalid JSON: Expecting ',' delimiter" in problem


def test_undefined_variable_names_line_and_column() -> None:
    found = problems(TEMPLATE, {k: v for k, v in VARIABLES.items() if k not in ("VIDEO", "MODEL_DIR")})
    video_line = line_of(TEMPLATE, "${VIDEO}")
    column = TEMPLATE.splitlines()[video_line - 1].index("${VIDEO}") + 1
    assert f"m.json:{video_line}:{column}: variable VIDEO is not defined (in .env or the environment)" in found
    assert any(p.startswith(f"m.json:{line_of(TEMPLATE, '$MODEL_DIR')}:") and "MODEL_DIR" in p for p in found)
    # registry credentials are not used locally, so their variables need not be set
    assert not any("CONTAINER_REGISTRY_USERNAME" in p for p in found)


def test_unknown_module_in_a_route_names_the_route_line() -> None:
    bad = TEMPLATE.replace("/modules/sensehat-display/inputs/input1", "/modules/sensehat/inputs/input1")
    (problem,) = problems(bad)
    assert problem.startswith(f"m.json:{line_of(bad, TO_DISPLAY)}: route toDisplay: unknown module 'sensehat'")


def test_route_syntax_error_names_the_route_and_position() -> None:
    bad = TEMPLATE.replace("WHERE $body.topProbability >= $MIN INTO", "WHERE $body.topProbability >= INTO")
    (problem,) = problems(bad)
    line = line_of(bad, '"toUpstream"')
    route_column = bad.splitlines()[line - 1].index("FROM /messages")
    position = len("FROM /messages/modules/camera-capture/outputs/* WHERE $body.topProbability >=") + 1
    assert problem == (
        f"m.json:{line}:{route_column + position}: route toUpstream:"
        f" the condition ends too early at position {position}"
    )


def test_missing_env_value_unknown_image_and_bad_policy_are_all_reported() -> None:
    bad = (
        TEMPLATE.replace('"FRAME_RATE": {"value": 2}', '"FRAME_RATE": {"valu": 2}')
        .replace("${MODULES.SenseHatDisplay}", "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.0")
        .replace('"restartPolicy": "always", "startupOrder": 1', '"restartPolicy": "sometimes", "startupOrder": 1')
    )
    found = problems(bad)
    assert len(found) == 3
    assert f"m.json:{line_of(bad, FRAME_RATE)}: module camera-capture: env FRAME_RATE has no value" in found[1]
    assert "restartPolicy 'sometimes' is not one of never, on-failure, on-unhealthy, always" in found[0]
    assert found[0].startswith(f"m.json:{line_of(bad, 'sometimes')}:")
    assert (
        "image 'mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.0' has no local entry point" in found[2]
    )
    assert found[2].startswith(f"m.json:{line_of(bad, 'simulated-temperature')}:")


def test_not_a_manifest() -> None:
    assert problems('{"hello": 1}') == ["m.json:1: not a deployment manifest: no modulesContent object"]


def test_twin_for_an_unknown_module() -> None:
    bad = TEMPLATE.replace('"sensehat-display": {"properties.desired"', '"sensehat-displai": {"properties.desired"')
    (problem,) = problems(bad)
    assert "twin 'sensehat-displai' is for a module that is not in $edgeAgent's modules" in problem


def test_image_table() -> None:
    assert image_key("${MODULES.CameraCapture.debug}") == "cameracapture"
    assert image_key("reg.azurecr.io/edgevision-sensehat-display:0.1.0-arm32v7") == "sensehatdisplay"
    assert resolve_image("x/custom:1", {"x/custom:1": ["python", "m.py"]}).command == ("python", "m.py")
    with pytest.raises(ImageError, match="has no local entry point"):
        resolve_image("${MODULES.Unknown}")


def test_demo_manifest_is_valid() -> None:
    deployment = manifest.load(DEMO_MANIFEST, {"DEMO_CLIP": "/tmp/clip.avi"})
    assert set(deployment.modules) == {
        "azureblobstorageoniotedge",
        "camera-capture",
        "image-classifier-service",
        "sensehat-display",
    }
    assert deployment.modules["camera-capture"].restart_policy == "on-failure"
    assert deployment.modules["azureblobstorageoniotedge"].local.name == "AzureBlobStorage"  # Azurite locally


@pytest.mark.parametrize("name", ["deployment.template.json", "deployment.debug.template.json"])
def test_project_deployment_templates_load(name: str) -> None:
    template, settings = ROOT / name, ROOT / ".env.template"
    if not (template.is_file() and settings.is_file()):
        pytest.skip(f"{name} or .env.template is not in the repository")
    deployment = manifest.load(template, manifest.read_env_file(settings))
    assert set(deployment.modules) == {
        "azureblobstorageoniotedge",
        "camera-capture",
        "image-classifier-service",
        "sensehat-display",
        "custom-vision-portal",
    }
    assert deployment.modules["custom-vision-portal"].status == "stopped"  # optional: the runtime skips it
    assert {r.name for r in deployment.routes} == {"cameraToDisplay", "cameraToUpstream", "capturesToUpstream"}
    assert {m.local.name for m in deployment.modules.values()} == {
        "AzureBlobStorage",
        "CameraCapture",
        "ImageClassifierService",
        "SenseHatDisplay",
        "CustomVisionPortal",
    }


def test_cli_rejects_a_bad_manifest_before_starting_anything(tmp_path: Path) -> None:
    bad = TEMPLATE.replace("/modules/sensehat-display/inputs/input1", "/modules/nowhere/inputs/input1")
    path = write(tmp_path, bad)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", str(path), "--out", str(out), "--set", "VIDEO=v.avi",
         "--set", "MIN=0.5", "--set", "TAGS=zebra", "--set", "MODEL_DIR="],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{path}:{line_of(bad, TO_DISPLAY)}: route toDisplay: unknown module 'nowhere'" in result.stderr
    assert not out.exists()


def test_cli_check_only_validates(tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE)
    (tmp_path / ".env").write_text("VIDEO=v.avi\nMIN=0.5\nTAGS=zebra\nMODEL_DIR=\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", str(path), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "OK: 3 modules" in result.stdout and "2 routes" in result.stdout


def test_missing_mosquitto_is_one_line_naming_the_install_command(tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE)
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "EDGEVISION_MOSQUITTO": str(tmp_path / "no-mosquitto")},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "scripts/setup.sh" in result.stderr and "apt-get install -y mosquitto" in result.stderr
