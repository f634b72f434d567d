"""`edgevision run`: a deployment manifest on one machine: brokers, workload API, routes, twins, modules."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgevision.errors import EdgeVisionError
from edgevision.files import write_atomic
from edgevision.runtime import certs, containers, manifest
from edgevision.runtime.broker import ModuleBroker, find_mosquitto, free_addresses
from edgevision.runtime.console import Console
from edgevision.runtime.images import BLOB_STORAGE, Listener
from edgevision.runtime.manifest import Deployment, ModuleSpec
from edgevision.runtime.modules import STABLE_AFTER, ModuleProcess, ModuleStartError, RestartPolicy
from edgevision.runtime.router import Router, UpstreamLog
from edgevision.runtime.twins import TwinStore
from edgevision.runtime.workload import API_VERSION, WorkloadAPI

# Host variables a module process inherits; everything else comes from the manifest, as in a container.
PASS_THROUGH = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "OMP_NUM_THREADS",
    "EDGEVISION_SHARED",
)


class RunError(EdgeVisionError):
    """The run cannot start (its folder is unusable)."""


class RunOptions(BaseModel):
    """What `edgevision run` was asked to do."""

    model_config = ConfigDict(extra="forbid")

    manifest: Path = Field(description="Deployment manifest or template to run.")
    out: Path = Field(description="Folder that keeps every artefact of the run.")
    duration: float | None = Field(None, gt=0, description="Stop after this many seconds (None = until Ctrl-C).")
    device_id: str = Field("edgevision-local", description="Device id the modules see (IOTEDGE_DEVICEID).")
    env_file: Path | None = Field(
        None, description="`.env` file for template variables (default: beside the manifest)."
    )
    images: dict[str, list[str]] = Field(default_factory=dict, description="Extra image -> command mappings.")
    variables: dict[str, str] = Field(
        default_factory=dict, description="Template variables set by the caller (win over .env and the environment)."
    )
    restart_delay: float = Field(
        1.0, gt=0, description="First restart back-off, seconds; doubles per restart in a row."
    )
    max_restart_delay: float = Field(30.0, gt=0, description="Longest restart back-off, seconds.")
    stop_timeout: float = Field(10.0, gt=0, description="Seconds a module gets to exit after SIGTERM before SIGKILL.")
    drain: float = Field(3.0, ge=0, description="Seconds messages get to settle once every finite module has finished.")
    watch: bool = Field(True, description="Push desired-property changes when the manifest file changes.")
    containers: bool = Field(
        False, description="Run each module as a container of its manifest's image (a Docker engine is needed)."
    )
    platform: str | None = Field(
        None, description="Image platform of `${MODULES.X}` with --containers (default: this machine's)."
    )


class Runtime:
    """One run. `check()` validates without starting anything; `run()` starts, supervises and stops it all."""

    def __init__(self, options: RunOptions, console: Console | None = None) -> None:
        self.options = options
        self.out = options.out.resolve()
        self.console = console or Console()
        self.deployment: Deployment | None = None
        self.brokers: dict[str, ModuleBroker] = {}
        self.modules: dict[str, ModuleProcess] = {}
        self.ports: dict[str, dict[str, int]] = {}
        self.router: Router | None = None
        self.workload: WorkloadAPI | None = None
        self._stop = threading.Event()
        self._manifest_stamp: tuple[float, int] | None = None
        self._scratch: Path | None = None
        self.plans: dict[str, containers.ContainerPlan] = {}  # --containers: how each module runs

    # -- checking -----------------------------------------------------------------------------------------

    def variables(self) -> dict[str, str]:
        values = manifest.template_variables(self.options.manifest, self.options.env_file)
        values["EDGEVISION_RUN_DIR"] = str(self.out)
        values.update(self.options.variables)
        return values

    def check(self) -> Deployment:
        """Load and validate the manifest; nothing is started. ManifestError lists every problem."""
        return manifest.load(self.options.manifest, self.variables(), self.options.images, self.options.containers)

    def plan_containers(self, deployment: Deployment) -> dict[str, containers.ContainerPlan]:
        """--containers: which image each module runs (ContainerError when the engine or an image is missing)."""
        version = containers.engine_version()
        target = self.options.platform or containers.host_platform()
        plans = containers.plan(deployment, self.options.manifest.resolve().parent, target, self.options.images)
        self.console.line("runtime", f"Docker {version}: modules run as {target} containers, --network host")
        return plans

    # -- running ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask a running `run()` to stop (thread-safe)."""
        self._stop.set()

    def run(self) -> int:
        mosquitto = find_mosquitto()
        self.deployment = self.check()
        if self.options.containers:
            self.plans = self.plan_containers(self.deployment)
        self._manifest_stamp = self._stamp()
        self._prepare_out()
        previous = self._install_signals()
        try:
            self._start(mosquitto)
            code = self._supervise()
        except KeyboardInterrupt:
            self.console.line("runtime", "interrupted: stopping")
            code = 130
        finally:
            self._shutdown()
            self._restore_signals(previous)
        return code

    def _prepare_out(self) -> None:
        for name in ("logs", "twins"):
            shutil.rmtree(self.out / name, ignore_errors=True)
        try:
            (self.out / "logs").mkdir(parents=True, exist_ok=True)
            (self.out / "upstream.jsonl").unlink(missing_ok=True)
            (self.out / "blobs.json").unlink(missing_ok=True)
        except OSError as exc:
            raise RunError(f"cannot use {self.out} as the run folder: {exc.strerror or exc}") from None
        # Unix socket paths must stay short (108 bytes): the socket and broker state live in a temp folder.
        self._scratch = Path(tempfile.mkdtemp(prefix="edgevision-run-"))

    def _start(self, mosquitto: str) -> None:
        assert self.deployment is not None and self._scratch is not None
        deployment = self.deployment
        names = list(deployment.modules)
        self.console.widen([*names, "runtime", "upstream"])
        addresses = dict(zip(names, free_addresses(len(names)), strict=True))
        self.console.line(
            "runtime", f"manifest {deployment.source}: {len(names)} modules, {len(deployment.routes)} routes"
        )
        certificates = certs.generate(self._scratch / "certs", list(addresses.values()))
        shutil.copy(certificates.ca, self.out / "ca.pem")

        # Its own folder: containers get it bind-mounted (the scratch folder around it stays 0700).
        (self._scratch / "workload").mkdir(mode=0o755)
        self.workload = WorkloadAPI(
            self._scratch / "workload" / "workload.sock",
            certificates.ca_pem(),
            mode=0o666 if self.plans else 0o600,  # a container's user is not the runtime's
        )
        self.workload.start()
        for name, address in addresses.items():
            broker = ModuleBroker(
                name,
                address,
                certificates,
                self._scratch / "brokers" / name,
                self.out / "logs" / "brokers" / f"{name}.log",
                mosquitto,
            )
            broker.start()
            self.brokers[name] = broker
        self.console.line("runtime", "brokers: " + ", ".join(f"{n} mqtts://{a}:8883" for n, a in addresses.items()))

        twins = TwinStore(self.out / "twins")
        for name in names:
            twins.add(name, deployment.desired.get(name, {}))
        upstream = UpstreamLog(self.out / "upstream.jsonl", self.console)
        self.router = Router(self.options.device_id, deployment.routes, twins, upstream, certificates.ca, self.console)
        for name, address in addresses.items():
            self.router.add_module(name, address)
        self.router.start()

        environments = self._environments(deployment, addresses)
        ordered = deployment.ordered_modules()
        for index, spec in enumerate(ordered):
            process = self._module(spec, environments[spec.name])
            self.modules[spec.name] = process
            if spec.status == "running":
                process.start()
                self.console.line("runtime", f"started {spec.name} (pid {process.pid}): {_what(process)}")
                later = any(o.startup_order > spec.startup_order for o in ordered[index + 1 :])
                if later and any(listener.always_open for listener in self._listeners(spec)):
                    self._wait_listening(process)  # let a server come up before the modules that call it
            else:
                self.console.line("runtime", f"{spec.name} has status {spec.status}: not started")
        self._write_state()

    def _module(self, spec: ModuleSpec, env: dict[str, str]) -> ModuleProcess:
        log = self.out / "logs" / f"{spec.name}.log"
        plan = self.plans.get(spec.name)
        for note in plan.notes if plan else ():
            self.console.line("runtime", f"{spec.name}: {note}")
        if plan is None or plan.image is None:
            return ModuleProcess(spec, env, log, self.console)
        assert self._scratch is not None and self.deployment is not None
        name = f"edgevision-{self._scratch.name.rsplit('-', 1)[-1]}-{spec.name}"
        volumes = {}
        for source, _ in spec.binds:
            if not source.startswith("/"):  # a named volume: a folder of the run its user can write
                volumes[source] = self.out / source
                containers.prepare_volume(volumes[source], plan.user)
        env_file = containers.write_env_file(self._scratch / "env" / f"{spec.name}.env", env)
        labels = {"org.edgevision.run": str(self.out), "org.edgevision.module": spec.name}
        arguments = containers.run_arguments(
            spec, plan, name, env_file, volumes, self._scratch / "workload", list(self.deployment.modules), labels
        )
        return containers.ContainerModule(spec, env, log, self.console, name, arguments)

    def _wait_listening(self, process: ModuleProcess, timeout: float = 30.0) -> None:
        """Wait until `process` accepts connections on its ports (a local nicety: edgeAgent only orders starts)."""
        deadline = time.monotonic() + timeout
        ports = self.ports.get(process.name, {})
        for listener in (item for item in self._listeners(process.spec) if item.always_open):
            port = ports[listener.port_env]
            while time.monotonic() < deadline and process.poll() is None and not self._stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.1)

    def _environments(self, deployment: Deployment, addresses: Mapping[str, str]) -> dict[str, dict[str, str]]:
        assert self.workload is not None
        # Servers inside containers listen on fixed ports; locally each gets a free loopback port.
        for spec in deployment.modules.values():
            self.ports[spec.name] = {}
            for listener in self._listeners(spec):
                self.ports[spec.name][listener.port_env] = _free_port()
        environments = {}
        for spec in deployment.modules.values():
            if self._in_container(spec):  # the image's environment, the manifest's values, container paths
                env = self._container_values(spec, deployment)
            else:
                env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
                env.update(self._local_values(spec, deployment))
                if spec.binds:  # where each mount is locally, for entry points that take a folder, not a value
                    env["EDGEVISION_MOUNTS"] = json.dumps({c: str(self._bind_folder(s)) for s, c in spec.binds})
            for listener in self._listeners(spec):
                env[listener.host_env] = "127.0.0.1"
                env[listener.port_env] = str(self.ports[spec.name][listener.port_env])
            env.update(
                IOTEDGE_IOTHUBHOSTNAME=f"{self.options.device_id}.local.azure-devices.net",
                IOTEDGE_DEVICEID=self.options.device_id,
                IOTEDGE_MODULEID=spec.name,
                IOTEDGE_GATEWAYHOSTNAME=addresses[spec.name],
                IOTEDGE_MODULEGENERATIONID=self.workload.add_module(spec.name),
                IOTEDGE_WORKLOADURI=containers.WORKLOAD_URI if self._in_container(spec) else self.workload.uri,
                IOTEDGE_APIVERSION=API_VERSION,
                IOTEDGE_AUTHSCHEME="sasToken",
                PYTHONUNBUFFERED="1",
            )
            environments[spec.name] = env
        return environments

    def _in_container(self, spec: ModuleSpec) -> bool:
        plan = self.plans.get(spec.name)
        return plan is not None and plan.image is not None

    def _listeners(self, spec: ModuleSpec) -> tuple[Listener, ...]:
        """The ports a module takes from its env: every local entry point's, only this project's images'."""
        if self._in_container(spec) and spec.local.name not in containers.OWN_IMAGES:
            return ()  # another image listens on its own ports (the host's, under host networking)
        return spec.local.listeners

    def _container_values(self, spec: ModuleSpec, deployment: Deployment) -> dict[str, str]:
        """The manifest's env as the container sees it: module names resolve (`--add-host`), so only the
        ports of `http://<module>[:port]` change, to the free ports the listening modules got."""
        env = {}
        for key, value in spec.env.items():
            for other in deployment.modules.values():
                for listener in self._listeners(other):
                    port = self.ports[other.name][listener.port_env]
                    implicit = "?" if listener.container_port == 80 else ""
                    pattern = rf"(https?)://{re.escape(other.name)}(:{listener.container_port}){implicit}(?=[/?#;]|$)"
                    value = re.sub(pattern, rf"\g<1>://{other.name}:{port}", value)
            env[key] = value
        return env

    def _local_values(self, spec: ModuleSpec, deployment: Deployment) -> dict[str, str]:
        """The manifest's env with container-only names made local: `http://<module>[:port]` -> the module's
        loopback port, bind-mounted container paths -> folders under the run's out folder."""
        rewrites: list[tuple[re.Pattern[str], str]] = []
        for other in deployment.modules.values():
            for listener in self._listeners(other):
                port = self.ports[other.name][listener.port_env]
                implicit = "?" if listener.container_port == 80 else ""
                pattern = re.compile(
                    rf"(https?)://{re.escape(other.name)}(:{listener.container_port}){implicit}(?=[/?#]|$)"
                )
                rewrites.append((pattern, f"http://127.0.0.1:{port}"))
        env = {}
        for key, value in spec.env.items():
            for pattern, replacement in rewrites:
                value = pattern.sub(replacement, value)
            for source, container in spec.binds:
                if value == container or value.startswith(container.rstrip("/") + "/"):
                    value = str(self._bind_folder(source)) + value[len(container.rstrip("/")) :]
            env[key] = value
        return env

    def _bind_folder(self, source: str) -> Path:
        """A host path is what Docker mounts (a folder made if missing, or a file); a named volume becomes a
        folder of the run."""
        local = Path(source) if source.startswith("/") else self.out / source
        if not local.is_file():
            local.mkdir(parents=True, exist_ok=True)
        return local

    # -- supervising --------------------------------------------------------------------------------------

    def _supervise(self) -> int:
        deadline = time.monotonic() + self.options.duration if self.options.duration else None
        policy = RestartPolicy(self.options.restart_delay, self.options.max_restart_delay)
        finished_at: float | None = None
        next_manifest_check = time.monotonic() + 1
        while not self._stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.console.line("runtime", f"--duration {self.options.duration:g} s elapsed: stopping")
                break
            self._check_brokers()
            changed = self._check_modules(policy, now)
            if changed:
                self._write_state()
            if self.options.watch and now >= next_manifest_check:
                next_manifest_check = now + 1
                self._check_manifest()
            if finished_at is None and self._all_finite_finished():
                finished_at = now
                self.console.line(
                    "runtime", f"every module that can finish has finished: stopping in {self.options.drain:g} s"
                )
            if finished_at is not None and now - finished_at >= self.options.drain:
                break
            self._stop.wait(0.2)
        failed = [m.name for m in self.modules.values() if m.finished and m.exit_code not in (0, None)]
        return 1 if failed else 0

    def _check_brokers(self) -> None:
        for broker in self.brokers.values():
            if not broker.running() and not self._stop.is_set():
                code = broker.process.returncode if broker.process else None
                self.console.line("runtime", f"broker of {broker.module} exited ({code}): restarting it")
                try:
                    broker.restart()
                except Exception as exc:  # keep supervising; try again on the next tick
                    self.console.line("runtime", f"broker of {broker.module} did not restart: {exc}")
                self._write_state()

    def _check_modules(self, policy: RestartPolicy, now: float) -> bool:
        changed = False
        for module in self.modules.values():
            if module.restart_at is not None:
                if now >= module.restart_at and not self._stop.is_set():
                    module.restarts += 1
                    try:
                        module.start()
                    except ModuleStartError as exc:
                        module.restart_at, module.finished, module.exit_code = None, True, 127
                        self.console.line("runtime", str(exc))
                        continue
                    self.console.line(
                        "runtime", f"restarted {module.name} (pid {module.pid}, restart {module.restarts})"
                    )
                    changed = True
                continue
            code = module.poll()
            if code is None and isinstance(module, containers.ContainerModule) and module.check_health(now):
                changed = True
                self._said_health(module)
            if code is None or module.exit_code is not None:
                continue
            module.exit_code = code
            changed = True
            ran = now - module.started_at
            module.in_a_row = 1 if ran >= STABLE_AFTER else module.in_a_row + 1
            if RestartPolicy.wants_restart(module.spec.restart_policy, code):
                delay = policy.backoff(module.in_a_row)
                module.restart_at = now + delay
                self.console.line(
                    "runtime",
                    f"{module.name} exited with {code}: restarting in {delay:g} s"
                    f" (restartPolicy {module.spec.restart_policy})",
                )
            else:
                module.finished = True
                self.console.line(
                    "runtime",
                    f"{module.name} exited with {code} (restartPolicy {module.spec.restart_policy}: not restarted)",
                )
        return changed

    def _said_health(self, module: containers.ContainerModule) -> None:
        if module.health == "unhealthy":
            self.console.line(
                "runtime",
                f"{module.name}: Docker reports its container unhealthy (the image's health check fails): left"
                " running, as edgeAgent does; a restartPolicy applies only when a module exits",
            )
        elif module.health == "healthy":
            self.console.line("runtime", f"{module.name}: its container's health check passes")

    def _all_finite_finished(self) -> bool:
        finite = [m for m in self.modules.values() if m.spec.status == "running" and m.spec.restart_policy != "always"]
        return bool(finite) and all(m.finished for m in finite)

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.options.manifest.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size

    def _check_manifest(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self._manifest_stamp:
            return
        self._manifest_stamp = stamp
        try:
            updated = self.check()
        except Exception as exc:
            self.console.line("runtime", f"manifest changed but is not valid, kept the running one: {exc}")
            return
        assert self.router is not None and self.deployment is not None
        self.router.routes = updated.routes
        for name in self.deployment.modules:
            patch = self.router.twins.set_desired(name, updated.desired.get(name, {}))
            if patch is not None:
                self.router.push_desired(name, patch)
        if _module_view(updated) != _module_view(self.deployment):
            self.console.line("runtime", "manifest changed modules (image/env/policy): restart the run to apply them")
        self.deployment.routes = updated.routes
        self.console.line("runtime", f"manifest reloaded: {len(updated.routes)} routes, desired properties pushed")

    def _write_state(self) -> None:
        """`<out>/runtime.json`: addresses, ports, pids and restarts, for people and tests."""
        state: dict[str, Any] = {
            "device": self.options.device_id,
            "manifest": str(self.options.manifest),
            "workloadUri": self.workload.uri if self.workload else None,
            "modules": {},
        }
        for name, module in self.modules.items():
            broker = self.brokers.get(name)
            state["modules"][name] = {
                "status": module.status,
                "pid": module.pid,
                "restarts": module.restarts,
                "exitCode": module.exit_code,
                "ports": self.ports.get(name, {}),
                "container": getattr(module, "container", None),
                "health": getattr(module, "health", "") or None,  # Docker's, for containers with a health check
                "image": (self.plans[name].image if name in self.plans else None),
                "gateway": broker.address if broker else None,
                "brokerPid": broker.pid if broker else None,
                "brokerRestarts": broker.restarts if broker else 0,
            }
        write_atomic(self.out / "runtime.json", json.dumps(state, indent=2))

    # -- stopping -----------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self._stop.set()
        order = self.deployment.ordered_modules() if self.deployment else []
        for spec in reversed(order):
            module = self.modules.get(spec.name)
            if module is not None and module.status == "running":
                if spec.local.name == BLOB_STORAGE:  # after every module that writes blobs, before the store
                    self._write_blobs(module)
                self.console.line("runtime", f"stopping {spec.name}")
                module.stop(self.options.stop_timeout)
        if self.modules:
            self._write_state()
        if self.router is not None:
            self.router.stop()
        for broker in self.brokers.values():
            broker.stop()
        if self.workload is not None:
            self.workload.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._summary()

    def _write_blobs(self, module: ModuleProcess) -> None:
        """`<out>/blobs.json`: every blob of the local blob module (name, size, metadata), as the run left them."""
        from edgevision.runtime.azurite import connection_string, list_blobs

        account = module.env.get("LOCAL_STORAGE_ACCOUNT_NAME", "")
        key = module.env.get("LOCAL_STORAGE_ACCOUNT_KEY", "")
        endpoint = f"http://127.0.0.1:{module.env.get('BLOB_PORT', '11002')}"
        try:
            blobs = list_blobs(connection_string(account, key, endpoint))
        except Exception as exc:  # the store may have failed; the run's other results still count
            self.console.line("runtime", f"cannot list the blobs of {module.name}: {str(exc).splitlines()[0]}")
            return
        write_atomic(self.out / "blobs.json", json.dumps(blobs, indent=1, ensure_ascii=False))
        self.console.line("runtime", f"blobs in {module.name}: {len(blobs)} -> {self.out / 'blobs.json'}")

    def _summary(self) -> None:
        if self.router is None:
            return
        upstream = self.router.upstream
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(upstream.counts.items())) or "none"
        rejected = sum(upstream.rejected.values())
        self.console.line(
            "runtime",
            f"upstream messages: {sum(upstream.counts.values())} ({counts}; {rejected} not matching their contract)"
            f" -> {upstream.path}",
        )
        delivered = ", ".join(f"{k}: {v}" for k, v in sorted(self.router.delivered.items())) or "none"
        self.console.line("runtime", f"delivered: {delivered}; unrouted: {self.router.unrouted}")
        self.console.line("runtime", f"logs: {self.out / 'logs'}; twins: {self.out / 'twins'}")

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGTERM, lambda *_: self._stop.set())

    def _restore_signals(self, previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _module_view(deployment: Deployment) -> dict[str, Any]:
    return {n: (m.image, m.env, m.restart_policy, m.status) for n, m in deployment.modules.items()}


def _what(module: ModuleProcess) -> str:
    if isinstance(module, containers.ContainerModule):
        return f"container {module.container} of {module.arguments[-1]}"
    return " ".join(module.spec.local.command[-3:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_out() -> Path:
    return Path("edgevision-runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def image_overrides(pairs: Sequence[str]) -> dict[str, list[str]]:
    from edgevision.runtime.images import parse_image_overrides

    return {k: list(v) for k, v in parse_image_overrides(pairs).items()}


__all__ = ["RunOptions", "Runtime", "default_out", "image_overrides"]
