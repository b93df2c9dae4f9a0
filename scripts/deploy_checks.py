"""The rules scripts/check-deploy applies to deploy/ and the Dockerfile.

Each check returns a list of problems (strings naming where and what); an empty list
passes. The checks take texts or parsed documents, not paths, so that the self-test in
check_deploy.py can hand them deliberately broken copies.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import tempfile
from typing import Any

import yaml

# Native sidecars (init containers with restartPolicy: Always) are on by default from
# 1.29 (beta) and GA from 1.33. 1.31 is old enough for clusters that still run it, and
# its schemas ship with the pinned kubernetes-validate (which has 1.25 to 1.37).
KUBERNETES_VERSION = "1.31.0"

SHELLS = {"sh", "bash", "dash", "ash", "zsh", "busybox"}
SIDECAR = "vaultbridge"


# ---- Kubernetes -------------------------------------------------------------------


def load_manifests(root: str) -> dict[str, list[dict[str, Any]]]:
    """Every YAML file under root, as its documents, keyed by path relative to root."""
    manifests = {}
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as handle:
                    docs = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
                manifests[os.path.relpath(path, root)] = docs
    return manifests


def schema_problems(manifests: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Strict validation against the schemas of KUBERNETES_VERSION: unknown fields fail."""
    import kubernetes_validate

    problems = []
    for path, docs in manifests.items():
        for doc in docs:
            where = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except Exception as err:  # the package raises several types; all fail
                problems.append(f"{where}: not valid for Kubernetes {KUBERNETES_VERSION}: {err}")
    return problems


def pod_specs(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(pod metadata, pod spec) of a Pod or of a workload's pod template."""
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("metadata", {}), doc.get("spec", {})
    if kind in {"Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        template = doc.get("spec", {}).get("template", {})
        return template.get("metadata", {}), template.get("spec", {})
    if kind == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        return template.get("metadata", {}), template.get("spec", {})
    return None


def image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image `{image}` is not pinned: give it a tag or a digest"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image `{image}` is not pinned: `latest` moves"
    return None


def container_security_problems(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The restrictive securityContext, taking pod-level defaults into account."""
    pod_context = pod.get("securityContext", {})
    own = container.get("securityContext", {})

    def effective(key: str) -> Any:
        return own.get(key, pod_context.get(key))

    problems = []
    if effective("runAsNonRoot") is not True:
        problems.append("runAsNonRoot must be true")
    user = effective("runAsUser")
    if not isinstance(user, int) or user <= 0:
        problems.append(f"runAsUser must be a numeric non-root user, got {user!r}")
    if own.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem must be true")
    if own.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    if own.get("privileged"):
        problems.append("must not be privileged")
    capabilities = own.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("capabilities must drop ALL")
    if capabilities.get("add"):
        problems.append(f"capabilities must add nothing, adds {capabilities['add']}")
    seccomp = effective("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("seccompProfile must be RuntimeDefault (pod or container)")
    return problems


def exec_command(probe: dict[str, Any]) -> list[str] | None:
    command = probe.get("exec", {}).get("command")
    return command if isinstance(command, list) else None


def probe_problems(name: str, probe: dict[str, Any] | None, required: bool) -> tuple[list[str], str | None]:
    """Problems of a probe that must run `vaultbridge health` without a shell, and the
    socket path it asks."""
    if probe is None:
        return (["needs a startupProbe running `vaultbridge health`"] if required else []), None
    command = exec_command(probe)
    if not command:
        return [f"{name} must be an exec probe running `vaultbridge health`"], None
    program = os.path.basename(command[0])
    if program in SHELLS:
        return [f"{name} runs a shell (`{command[0]}`); the image has none: exec the binary"], None
    if program != "vaultbridge" or len(command) < 2 or command[1] != "health":
        return [f"{name} must run `vaultbridge health`, runs `{shlex.join(command)}`"], None
    address = None
    if "--addr" in command[1:]:
        at = command.index("--addr")
        address = command[at + 1] if at + 1 < len(command) else None
    if address is None or not address.startswith("unix:"):
        return [f"{name} must name the socket with `--addr unix:/path`"], None
    return [], address[len("unix:"):]


def config_of(spec: dict[str, Any], sidecar: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """The daemon config the sidecar runs with: its `--config` path, through the volume
    mounted there, to a ConfigMap's key."""
    args = sidecar.get("args", [])
    if "--config" not in args:
        return None, "the sidecar must pass `--config /path` in args"
    path = args[args.index("--config") + 1]
    directory, key = os.path.split(path)
    mounts = {m["mountPath"]: m["name"] for m in sidecar.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    volume = volumes.get(mounts.get(directory, ""), {})
    name = volume.get("configMap", {}).get("name")
    if name is None:
        return None, f"`{path}` is not in a mounted ConfigMap"
    if name not in configmaps:
        return None, f"ConfigMap `{name}` is not among the manifests"
    text = configmaps[name].get("data", {}).get(key)
    if text is None:
        return None, f"ConfigMap `{name}` has no key `{key}`"
    return yaml.safe_load(text), None


def policy_problems(manifests: dict[str, list[dict[str, Any]]]) -> list[str]:
    configmaps = {
        d["metadata"]["name"]: d for docs in manifests.values() for d in docs if d.get("kind") == "ConfigMap"
    }
    problems = []
    pods = 0
    for path, docs in manifests.items():
        accounts = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ServiceAccount"}
        for doc in docs:
            found = pod_specs(doc)
            if found is None:
                continue
            pods += 1
            where = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
            problems += [f"{where}: {p}" for p in pod_problems(doc, *found, configmaps, accounts)]
    if pods == 0:
        problems.append("no pod or workload among the manifests")
    return problems


def pod_problems(doc, metadata, spec, configmaps, accounts) -> list[str]:
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false (identity webhooks project their own tokens)")
    if not isinstance(spec.get("securityContext", {}).get("fsGroup"), int):
        problems.append("the pod needs a numeric fsGroup: it owns the shared socket directory")
    sidecars = [c for c in spec.get("initContainers", []) if c.get("name") == SIDECAR]
    if len(sidecars) != 1:
        return problems + [f"needs exactly one init container named `{SIDECAR}` (a native sidecar)"]
    sidecar = sidecars[0]
    apps = spec.get("containers", [])
    if sidecar.get("restartPolicy") != "Always":
        problems.append(
            "the sidecar needs `restartPolicy: Always`: a plain init container must exit before the workload starts, and the daemon never does"
        )
    if doc["kind"] in {"Job", "CronJob"} and spec.get("restartPolicy") not in {"Never", "OnFailure"}:
        problems.append("a Job's pod restartPolicy must be Never or OnFailure")
    for container in spec.get("initContainers", []) + apps:
        for problem in container_security_problems(spec, container):
            problems.append(f"container `{container.get('name')}`: {problem}")
        bad_image = image_problem(container.get("image", ""))
        if bad_image:
            problems.append(f"container `{container.get('name')}`: {bad_image}")
    resources = sidecar.get("resources", {})
    for section, keys in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
        for key in keys:
            if key not in resources.get(section, {}):
                problems.append(f"the sidecar's resources need {section}.{key}")
    found, socket = probe_problems("startupProbe", sidecar.get("startupProbe"), required=True)
    problems += found
    for name in ("livenessProbe", "readinessProbe"):
        problems += probe_problems(name, sidecar.get(name), required=False)[0]
    config, error = config_of(spec, sidecar, configmaps)
    if error:
        problems.append(error)
    if socket:
        problems += socket_problems(spec, sidecar, apps, socket, config)
    if config is not None:
        problems += config_problems(metadata, spec, sidecar, apps, config, accounts)
    return problems


def socket_problems(spec, sidecar, apps, socket, config) -> list[str]:
    problems = []
    # An emptyDir is world-writable (0777), which the daemon refuses as the socket's own
    # directory; it creates the socket's directory, private, inside the volume.
    directory = os.path.dirname(os.path.dirname(socket))
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mount = next((m for m in sidecar.get("volumeMounts", []) if m["mountPath"] == directory), None)
    if mount is None or "emptyDir" not in volumes.get(mount["name"], {}):
        return [f"the socket must sit in a directory of its own inside an emptyDir mounted in the sidecar at `{directory}`"]
    for app in apps:
        shared = any(m["name"] == mount["name"] and m["mountPath"] == directory for m in app.get("volumeMounts", []))
        if not shared:
            problems.append(f"container `{app.get('name')}` does not mount the socket directory's volume at `{directory}`")
        for variable in app.get("env", []):
            if variable.get("name") == "VAULTBRIDGE_ADDR" and variable.get("value") != f"unix:{socket}":
                problems.append(f"container `{app.get('name')}`: VAULTBRIDGE_ADDR is not the probed socket")
    if config is not None:
        server = config.get("server", {})
        if server.get("unix_socket") != socket:
            problems.append(f"the config listens on `{server.get('unix_socket')}`, the probe asks `{socket}`")
        users = {c.get("securityContext", {}).get("runAsUser") for c in [sidecar, *apps]}
        mode = str(server.get("unix_socket_mode", "0600"))
        if len(users) > 1 and not (len(mode) >= 3 and int(mode[-2]) & 6 == 6):
            problems.append(f"the workload runs as another user but unix_socket_mode {mode} gives the group no access")
    return problems


def config_problems(metadata, spec, sidecar, apps, config, accounts) -> list[str]:
    problems = []
    if config.get("cache", {}).get("warm_up") is not True:
        problems.append("the config needs cache.warm_up: true, or the startup probe passes on a cold cache")
    types = {b.get("type") for b in config.get("backends", {}).values()}
    env = {v["name"]: v.get("value") for v in sidecar.get("env", [])}
    app_names = {a["name"] for a in apps}
    annotations = metadata.get("annotations", {})
    account = accounts.get(spec.get("serviceAccountName", ""), {})
    account_annotations = account.get("metadata", {}).get("annotations", {})
    if spec.get("serviceAccountName") and not account:
        problems.append(f"ServiceAccount `{spec['serviceAccountName']}` is not defined beside the pod")
    if "aws_secrets_manager" in types:
        if env.get("AWS_EC2_METADATA_DISABLED") != "true":
            problems.append("an AWS sidecar must set AWS_EC2_METADATA_DISABLED=true (never the node's role)")
        skipped = set(annotations.get("eks.amazonaws.com/skip-containers", "").split(","))
        if not app_names <= skipped:
            problems.append("eks.amazonaws.com/skip-containers must list the workload's containers")
        if not spec.get("serviceAccountName"):
            problems.append("an AWS variant needs its own serviceAccountName")
    if "azure_key_vault" in types:
        if metadata.get("labels", {}).get("azure.workload.identity/use") != "true":
            problems.append('an Azure variant needs the pod label azure.workload.identity/use: "true"')
        if "azure.workload.identity/client-id" not in account_annotations:
            problems.append("an Azure variant's ServiceAccount needs azure.workload.identity/client-id")
        skipped = set(annotations.get("azure.workload.identity/skip-containers", "").split(";"))
        if not app_names <= skipped:
            problems.append("azure.workload.identity/skip-containers must list the workload's containers")
        for backend in config.get("backends", {}).values():
            if backend.get("type") == "azure_key_vault" and backend.get("credential", "auto") not in {"auto", "workload_identity"}:
                problems.append("the Key Vault backend must use credential workload_identity (or auto)")
    return problems


def daemon_config_problems(manifests, binary: str) -> list[str]:
    """Every ConfigMap's config.yaml through the real `vaultbridge check`, with the
    variables an identity webhook would inject."""
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        token = os.path.join(scratch, "azure-identity-token")
        with open(token, "w", encoding="utf-8") as handle:
            handle.write("not-a-real-token")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000001",
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
            "AZURE_FEDERATED_TOKEN_FILE": token,
        }
        for path, docs in manifests.items():
            for doc in docs:
                if doc.get("kind") != "ConfigMap" or "config.yaml" not in doc.get("data", {}):
                    continue
                config = os.path.join(scratch, "config.yaml")
                with open(config, "w", encoding="utf-8") as handle:
                    handle.write(doc["data"]["config.yaml"])
                run = subprocess.run([binary, "check", "--config", config], env=env, capture_output=True, text=True, check=False)
                if run.returncode != 0:
                    problems.append(f"{path}: `vaultbridge check` refuses the config (exit {run.returncode}):\n{run.stderr}{run.stdout}")
    return problems


# ---- Dockerfile ---------------------------------------------------------------------


def dockerfile_problems(text: str) -> list[str]:
    from dockerfile_parse import DockerfileParser

    with tempfile.TemporaryDirectory() as scratch:
        parser = DockerfileParser(path=scratch)
        parser.content = text
        instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    stages: list[tuple[str, list[dict[str, Any]]]] = []
    names: set[str] = set()
    problems = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            words = [w for w in instruction["value"].split() if not w.startswith("--")]
            image = words[0]
            if len(words) >= 3 and words[1].upper() == "AS":
                names.add(words[2])
            if image not in names and image != "scratch":
                bad = image_problem(image)
                if bad:
                    problems.append(f"FROM: base {bad}")
            stages.append((image, []))
        elif stages:
            stages[-1][1].append(instruction)
    if len(stages) < 2:
        return problems + ["the Dockerfile must be multi-stage: build in one stage, ship the binary on a minimal base"]
    build = " ".join(i["value"] for _, body in stages[:-1] for i in body if i["instruction"] == "RUN")
    if "cargo build --release" not in build:
        problems.append("no build stage runs `cargo build --release`")
    final = stages[-1][1]
    if not any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in final):
        problems.append("the final stage must COPY the binary --from the build stage")
    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    if not users:
        problems.append("the final stage sets no USER: it would run as root")
    elif not re.fullmatch(r"\d+(:\d+)?", users[-1]):
        problems.append(f"USER `{users[-1]}` is not numeric: runAsNonRoot cannot verify a name")
    elif int(users[-1].split(":")[0]) == 0:
        problems.append("USER 0 is root")
    entrypoints = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    if not entrypoints:
        problems.append("the final stage has no ENTRYPOINT")
    for name in ("ENTRYPOINT", "CMD"):
        for value in (i["value"] for i in final if i["instruction"] == name):
            if not is_exec_form(value):
                problems.append(f"{name} `{value}` is in shell form: use the exec form [\"...\"] (no shell in the image)")
    for value in (i["value"] for i in final if i["instruction"] == "HEALTHCHECK"):
        if value.strip().upper() != "NONE":
            command = re.split(r"\bCMD\b", value, maxsplit=1)
            if len(command) != 2 or not is_exec_form(command[1]):
                problems.append("HEALTHCHECK must use the exec form CMD [\"...\"] (no shell in the image)")
    return problems


def is_exec_form(value: str) -> bool:
    try:
        parsed = json.loads(value)
    except ValueError:
        return False
    return isinstance(parsed, list) and bool(parsed) and all(isinstance(p, str) for p in parsed)


# ---- systemd --------------------------------------------------------------------------

MAX_EXPOSURE = 2.0


def systemd_problems(unit_text: str, binary: str) -> list[str]:
    """`systemd-analyze verify` (any message fails: it exits 0 on unknown or unparsable
    settings) and `systemd-analyze security --offline=yes` (exposure <= MAX_EXPOSURE).
    verify needs each Exec*= program to exist, so a copy runs the built binary."""
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        unit = os.path.join(scratch, "vaultbridge.service")
        text = unit_text
        for setting in ("ExecStart", "ExecReload"):
            text = text.replace(f"{setting}=/usr/local/bin/vaultbridge", f"{setting}={os.path.abspath(binary)}")
        with open(unit, "w", encoding="utf-8") as handle:
            handle.write(text)
        verify = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, check=False)
        said = (verify.stdout + verify.stderr).strip()
        if verify.returncode != 0 or said:
            problems.append(f"systemd-analyze verify (exit {verify.returncode}): {said}")
        security = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", "--no-pager", unit], capture_output=True, text=True, check=False
        )
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
        if match is None:
            problems.append(f"systemd-analyze security gave no exposure level: {security.stderr.strip()}")
        elif float(match.group(1)) > MAX_EXPOSURE:
            problems.append(f"systemd exposure level {match.group(1)} is above {MAX_EXPOSURE}")
        if security.stderr.strip():
            problems.append(f"systemd-analyze security: {security.stderr.strip()}")
    return problems


def mutated(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return copy.deepcopy(manifests)
