"""Checks deploy/ and the Dockerfile, then proves each check can fail: every rule is
run again on a deliberately broken copy of the real files and must reject it.

Run through scripts/check-deploy, which installs what this needs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any, Callable

import deploy_checks as checks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def expect_clean(self, name: str, problems: list[str]) -> None:
        if problems:
            self.failed += 1
            print(f"FAILED {name}:")
            for problem in problems:
                print(f"    {problem}")
        else:
            self.passed += 1
            print(f"ok     {name}")

    def expect_rejected(self, name: str, problems: list[str], wanted: str) -> None:
        if any(wanted in problem for problem in problems):
            self.passed += 1
            print(f"ok     self-test: {name}")
        else:
            self.failed += 1
            print(f"FAILED self-test: {name}: no problem mentions `{wanted}`; got {problems}")


def sidecar(manifests: dict[str, list[dict[str, Any]]], path: str) -> dict[str, Any]:
    pod = next(d for d in manifests[path] if checks.pod_specs(d))
    return next(c for c in checks.pod_specs(pod)[1]["initContainers"] if c["name"] == checks.SIDECAR)


def pod_of(manifests: dict[str, list[dict[str, Any]]], path: str) -> dict[str, Any]:
    return next(d for d in manifests[path] if checks.pod_specs(d))


def configmap(manifests: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    return next(d for docs in manifests.values() for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == name)


def replaced(text: str, old: str, new: str) -> str:
    # A self-test whose edit no longer applies would pass vacuously: fail instead.
    if old not in text:
        raise SystemExit(f"self-test out of date: `{old}` is no longer in the file")
    return text.replace(old, new)


def manifest_self_tests(report: Report, manifests: dict[str, list[dict[str, Any]]], binary: str) -> None:
    def broken(name: str, wanted: str, edit: Callable[[dict[str, list[dict[str, Any]]]], None], schema: bool = False) -> None:
        copy = checks.mutated(manifests)
        edit(copy)
        problems = checks.schema_problems(copy) if schema else checks.policy_problems(copy)
        report.expect_rejected(name, problems, wanted)

    def set_in(path: str, change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, list[dict[str, Any]]]], None]:
        return lambda copy: change(sidecar(copy, path))

    broken("an init container without restartPolicy: Always", "restartPolicy: Always",
           set_in("pod.yaml", lambda c: c.pop("restartPolicy")))
    broken("no startup probe", "startupProbe", set_in("pod.yaml", lambda c: c.pop("startupProbe")))
    broken("a probe through a shell", "runs a shell",
           set_in("job.yaml", lambda c: c["startupProbe"]["exec"].update(command=["/bin/sh", "-c", "vaultbridge health"])))
    broken("the sidecar as root", "runAsUser", set_in("pod.yaml", lambda c: c["securityContext"].update(runAsUser=0)))
    broken("a writable root filesystem", "readOnlyRootFilesystem",
           set_in("pod.yaml", lambda c: c["securityContext"].update(readOnlyRootFilesystem=False)))
    broken("capabilities kept", "drop ALL", set_in("pod.yaml", lambda c: c["securityContext"]["capabilities"].update(drop=[])))
    broken("an added capability", "add nothing",
           set_in("pod.yaml", lambda c: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"])))

    def no_seccomp(copy):
        sidecar(copy, "pod.yaml")["securityContext"].pop("seccompProfile")
        checks.pod_specs(pod_of(copy, "pod.yaml"))[1]["securityContext"].pop("seccompProfile")

    broken("no seccomp profile", "seccompProfile", no_seccomp)
    broken("an unpinned image", "not pinned", set_in("pod.yaml", lambda c: c.update(image="registry.example.com/vaultbridge:latest")))
    broken("no memory limit", "limits.memory", set_in("pod.yaml", lambda c: c["resources"]["limits"].pop("memory")))
    broken("the service-account token mounted", "automountServiceAccountToken",
           lambda copy: checks.pod_specs(pod_of(copy, "job.yaml"))[1].update(automountServiceAccountToken=True))
    broken("a workload that cannot see the socket", "does not mount the socket directory",
           lambda copy: checks.pod_specs(pod_of(copy, "pod.yaml"))[1]["containers"][0].update(volumeMounts=[]))

    def cold(copy):
        config = configmap(copy, "vaultbridge-config")
        config["data"]["config.yaml"] = replaced(config["data"]["config.yaml"], "warm_up: true", "warm_up: false")

    broken("a config without warm-up", "warm_up", cold)

    copy = checks.mutated(manifests)
    config = configmap(copy, "vaultbridge-config-aws")
    config["data"]["config.yaml"] = replaced(config["data"]["config.yaml"], "ttl: 5m", "tll: 5m")
    report.expect_rejected("a config the daemon refuses", checks.daemon_config_problems(copy, binary), "tll")

    def other_socket(copy):
        config = configmap(copy, "vaultbridge-config")
        config["data"]["config.yaml"] = replaced(config["data"]["config.yaml"], "/run/vaultbridge/socket/vaultbridge.sock", "/tmp/vb.sock")

    broken("a config listening elsewhere than the probe asks", "the probe asks", other_socket)
    broken("an AWS sidecar that may fall back to the node's role", "AWS_EC2_METADATA_DISABLED",
           set_in("aws/irsa.yaml", lambda c: c.update(env=[e for e in c["env"] if e["name"] != "AWS_EC2_METADATA_DISABLED"])))
    broken("an Azure pod not opted into the webhook", "azure.workload.identity/use",
           lambda copy: pod_of(copy, "azure/workload-identity.yaml")["metadata"]["labels"].pop("azure.workload.identity/use"))
    broken("the workload given the cloud identity too", "skip-containers",
           lambda copy: pod_of(copy, "aws/pod-identity.yaml")["metadata"]["annotations"].clear())
    broken("a misspelt field (strict schema)", "not valid for Kubernetes",
           set_in("pod.yaml", lambda c: c.update(restartPolicyy="Always")), schema=True)
    broken("a probe of the wrong type (schema)", "not valid for Kubernetes",
           set_in("job.yaml", lambda c: c["startupProbe"].update(periodSeconds="often")), schema=True)


def dockerfile_self_tests(report: Report, text: str) -> None:
    cases = [
        ("a named user", "USER 65532:65532", "USER nonroot", "not numeric"),
        ("root", "USER 65532:65532", "USER 0", "root"),
        ("an untagged base", "gcr.io/distroless/cc-debian12:nonroot", "gcr.io/distroless/cc-debian12", "not pinned"),
        ("a latest base", "rust:1.95-bookworm", "rust:latest", "not pinned"),
        ("a shell-form entrypoint", 'ENTRYPOINT ["/usr/local/bin/vaultbridge"]', "ENTRYPOINT /usr/local/bin/vaultbridge", "shell form"),
        ("a shell-form health check", 'CMD ["/usr/local/bin/vaultbridge", "health"]', "CMD /usr/local/bin/vaultbridge health", "HEALTHCHECK"),
    ]
    for name, old, new, wanted in cases:
        report.expect_rejected(f"Dockerfile with {name}", checks.dockerfile_problems(replaced(text, old, new)), wanted)
    single = text[text.index("FROM gcr.io") :]
    report.expect_rejected("a single-stage Dockerfile", checks.dockerfile_problems(single), "multi-stage")


def systemd_self_tests(report: Report, unit: str, binary: str) -> None:
    typo = replaced(unit, "ProtectSystem=strict", "ProtectSystem=strcit")
    report.expect_rejected("a unit with an unparsable value", checks.systemd_problems(typo, binary), "strcit")
    unknown = replaced(unit, "LockPersonality=yes", "LockPersonalty=yes")
    report.expect_rejected("a unit with a misspelt setting", checks.systemd_problems(unknown, binary), "LockPersonalty")
    loose = unit
    for line in ("DynamicUser=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
                 "PrivateDevices=yes", "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
        loose = replaced(loose, line + "\n", "")
    report.expect_rejected("a unit without its sandbox", checks.systemd_problems(loose, binary), "exposure level")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True, help="the vaultbridge binary, for `check` and systemd-analyze verify")
    parser.add_argument("--skip-systemd", action="store_true", help="skip the systemd checks, loudly (no systemd-analyze)")
    args = parser.parse_args()
    report = Report()
    manifests = checks.load_manifests(os.path.join(ROOT, "deploy", "kubernetes"))
    print(f"==> Kubernetes manifests ({len(manifests)} files, schemas of {checks.KUBERNETES_VERSION}, strict)")
    report.expect_clean("schemas", checks.schema_problems(manifests))
    report.expect_clean("native sidecar, probes, securityContext, resources, identities", checks.policy_problems(manifests))
    report.expect_clean("every ConfigMap's config passes `vaultbridge check`", checks.daemon_config_problems(manifests, args.binary))
    manifest_self_tests(report, manifests, args.binary)

    print("==> Dockerfile (static: it cannot be built here)")
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as handle:
        dockerfile = handle.read()
    report.expect_clean("Dockerfile", checks.dockerfile_problems(dockerfile))
    dockerfile_self_tests(report, dockerfile)

    print("==> systemd unit")
    with open(os.path.join(ROOT, "deploy", "systemd", "vaultbridge.service"), encoding="utf-8") as handle:
        unit = handle.read()
    if shutil.which("systemd-analyze") is None:
        if not args.skip_systemd:
            report.expect_clean("systemd", ["systemd-analyze is missing: install Debian's `systemd` package, or pass --skip-systemd to skip this check knowingly"])
        else:
            print("!!!!!! SKIPPED: the systemd unit was NOT checked (no systemd-analyze; --skip-systemd) !!!!!!")
    else:
        report.expect_clean("systemd-analyze verify and security", checks.systemd_problems(unit, args.binary))
        systemd_self_tests(report, unit, args.binary)

    print(f"check-deploy: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
