#!/usr/bin/env python3
"""A vaultbridge backend plugin for `pass`, the standard Unix password manager.

A definition's `secret` is a pass entry name (`jira/api-token`); the value is the
entry's decrypted content, byte for byte (`pass show`). Keys of a JSON entry are
picked by vaultbridge (this plugin declares `keys: false`).

vaultbridge starts it with `command: [python3, .../plugin.py]` and hands it the socket
path in VAULTBRIDGE_PLUGIN_SOCKET; `--socket PATH` runs it by hand (for
`vaultbridge plugin check`). The store and keys are pass's own: PASSWORD_STORE_DIR and
GNUPGHOME from the environment, or `store_dir` / `gnupg_home` in the backend's
`config:`.

Secret values never reach a log or an error message: errors name the entry only.
Stubs are generated from proto/vaultbridge/plugin/v1/backend.proto into gen/ (see
README.md in this directory).
"""

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import threading
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))
from vaultbridge.plugin.v1 import backend_pb2 as pb  # noqa: E402
from vaultbridge.plugin.v1 import backend_pb2_grpc as pb_grpc  # noqa: E402

LOG = logging.getLogger("vaultbridge-pass")
MAX_BATCH = 16
# grpc.health.v1 HealthCheckResponse{status: SERVING}, encoded by hand so that the
# plugin needs no more than grpcio (field 1, varint 1).
HEALTH_SERVING = b"\x08\x01"


class PassError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class PassBackend(pb_grpc.BackendServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._env = dict(os.environ)

    # -- the contract ------------------------------------------------------------------

    def Describe(self, request, context):
        return pb.DescribeResponse(
            name="pass",
            capabilities=pb.Capabilities(
                keys=False,
                binary=True,  # gpg and pass's base64 round trip keep every byte
                nul_bytes=True,
                max_batch=MAX_BATCH,
                revisions=True,
            ),
        )

    def Configure(self, request, context):
        settings = dict(request.config.fields.items()) if request.HasField("config") else {}
        env = dict(os.environ)
        for name, variable in (("store_dir", "PASSWORD_STORE_DIR"), ("gnupg_home", "GNUPGHOME")):
            value = settings.pop(name, None)
            if value is not None:
                if value.WhichOneof("kind") != "string_value":
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"`{name}` must be a path")
                env[variable] = value.string_value
        if settings:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "unknown settings: " + ", ".join(sorted(settings)) + "; known: store_dir, gnupg_home",
            )
        with self._lock:
            self._env = env
        return pb.ConfigureResponse()

    def Fetch(self, request, context):
        try:
            return self._fetch(request.secret)
        except PassError as err:
            context.abort(err.code, err.message)

    def FetchMany(self, request, context):
        results = []
        for secret in request.secrets:
            try:
                results.append(pb.FetchResult(secret=self._fetch(secret)))
            except PassError as err:
                results.append(pb.FetchResult(error=pb.Error(code=err.code.value[0], message=err.message)))
        return pb.FetchManyResponse(results=results)

    def Revision(self, request, context):
        return pb.RevisionResponse(revision=self._revision())

    # -- pass --------------------------------------------------------------------------

    def _store(self):
        with self._lock:
            env = dict(self._env)
        return env, env.get("PASSWORD_STORE_DIR") or os.path.expanduser("~/.password-store")

    def _fetch(self, secret):
        name = secret.id
        if secret.HasField("version_id") or secret.HasField("version_stage"):
            raise PassError(grpc.StatusCode.INVALID_ARGUMENT, f"pass entry `{name}` has no versions")
        if not name or name.startswith(("-", "/")) or ".." in name.split("/"):
            raise PassError(grpc.StatusCode.INVALID_ARGUMENT, f"`{name}` is not a pass entry name")
        env, store = self._store()
        if not os.path.isfile(os.path.join(store, name + ".gpg")):
            raise PassError(grpc.StatusCode.NOT_FOUND, f"pass entry `{name}` is not in the store")
        try:
            done = subprocess.run(
                ["pass", "show", "--", name],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            )
        except FileNotFoundError:
            raise PassError(grpc.StatusCode.UNAVAILABLE, "the `pass` program is not installed")
        except subprocess.TimeoutExpired:
            raise PassError(grpc.StatusCode.UNAVAILABLE, f"`pass show {name}` took longer than 30 s")
        if done.returncode != 0:
            # pass and gpg write no plaintext to stderr, but it is still kept out of
            # the answer: only the kind of failure is reported.
            stderr = done.stderr.decode("utf-8", "replace")
            LOG.warning("pass show %s failed with exit code %d", name, done.returncode)
            if "is not in the password store" in stderr:
                raise PassError(grpc.StatusCode.NOT_FOUND, f"pass entry `{name}` is not in the store")
            if "No secret key" in stderr or "decryption failed" in stderr:
                raise PassError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"pass entry `{name}` cannot be decrypted with the keys in GNUPGHOME",
                )
            raise PassError(grpc.StatusCode.UNAVAILABLE, f"`pass show {name}` failed (exit {done.returncode})")
        return pb.FetchResponse(value=done.stdout)

    def _revision(self):
        """Changes whenever an entry is added, replaced or removed."""
        _, store = self._store()
        digest = hashlib.sha256()
        for root, dirs, files in os.walk(store):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".gpg"):
                    path = os.path.join(root, name)
                    try:
                        info = os.stat(path)
                    except FileNotFoundError:
                        continue
                    digest.update(f"{path}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        return int.from_bytes(digest.digest()[:8], "big")


def health_handler():
    def check(request, context):
        return HEALTH_SERVING

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check, request_deserializer=lambda raw: raw, response_serializer=lambda raw: raw
            )
        },
    )


def watch_lifeline(stopped):
    """vaultbridge holds our stdin open while it runs; end-of-file means it is gone
    (even killed), so stop rather than outlive it."""
    while sys.stdin.buffer.read(4096):
        pass
    LOG.info("vaultbridge is gone (its lifeline closed); stopping")
    stopped.set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=os.environ.get("VAULTBRIDGE_PLUGIN_SOCKET"))
    args = parser.parse_args()
    if not args.socket:
        parser.error("no socket: set VAULTBRIDGE_PLUGIN_SOCKET or pass --socket")
    logging.basicConfig(level=logging.INFO, format="vaultbridge-pass: %(levelname)s %(message)s")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_BackendServicer_to_server(PassBackend(), server)
    server.add_generic_rpc_handlers((health_handler(),))
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server.add_insecure_port("unix:" + args.socket)
    server.start()
    LOG.info("serving on %s (pid %d)", args.socket, os.getpid())
    stopped = threading.Event()

    import signal

    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    if os.environ.get("VAULTBRIDGE_PLUGIN_LIFELINE") == "stdin":
        threading.Thread(target=watch_lifeline, args=(stopped,), daemon=True).start()
    stopped.wait()
    server.stop(grace=2).wait()
    LOG.info("stopped")


if __name__ == "__main__":
    main()
