"""A sandbox is one VM. ``Sandbox.create()`` makes one (a context manager that deletes it on
exit), ``Sandbox.connect(id)`` takes one that exists."""

from __future__ import annotations

import urllib.parse
from typing import Any, Dict, List, Optional, Union

from ._http import Http, query
from .errors import RdsApiError
from .types import ExecResult, NetworkInfo, PeerLink, RunResult, SnapshotInfo, VmInfo

#: Beyond a run's own timeout, how long to wait for the manager's answer (seconds).
_ANSWER_GRACE_S = 30.0


def _env_list(env: Optional[Dict[str, str]]) -> Optional[List[str]]:
    return None if env is None else [f"{k}={v}" for k, v in env.items()]


class Sandbox:
    def __init__(self, http: Http, info: VmInfo) -> None:
        self._http = http
        self.id = info.id
        #: The VM as it was last read (create, connect, refresh).
        self.info = info
        self.files = SandboxFiles(http, info.id)
        self.network = SandboxNetwork(http, info.id)

    # -- making and finding ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        cpu: int = 1,
        mem_mb: int = 256,
        allow_ips: Optional[List[str]] = None,
        allow_domains: Optional[List[str]] = None,
        outbound_internet: Optional[bool] = None,
        image_id: Optional[str] = None,
        snapshot_id: Optional[str] = None,
        accept_snapshot_secrets: bool = False,
        secret_env: Optional[Dict[str, str]] = None,
        peer_links: Optional[List[PeerLink]] = None,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: float = 120.0,
    ) -> "Sandbox":
        """Creates a VM (no network unless asked) and returns once it runs."""
        http = Http(base_url, api_key, timeout)
        body: Dict[str, Any] = {"cpu": cpu, "memMb": mem_mb, "allowIps": allow_ips or []}
        if allow_domains is not None:
            body["allowDomains"] = allow_domains
        if outbound_internet is not None:
            body["outboundInternet"] = outbound_internet
        if image_id:
            body["imageId"] = image_id
        if snapshot_id:
            body["snapshotId"] = snapshot_id
        if accept_snapshot_secrets:
            body["acceptSnapshotSecrets"] = True
        if secret_env:
            body["secretEnv"] = _env_list(secret_env)
        if peer_links:
            body["peerLinks"] = [{"alias": p.alias, "vmId": p.vm_id, "sourceMode": p.source_mode} for p in peer_links]
        return cls(http, VmInfo.from_api(http.json("POST", "/v1/vms", body)))

    @classmethod
    def connect(cls, vm_id: str, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: float = 120.0) -> "Sandbox":
        http = Http(base_url, api_key, timeout)
        return cls(http, VmInfo.from_api(http.json("GET", f"/v1/vms/{urllib.parse.quote(vm_id, safe='')}")))

    @staticmethod
    def list(base_url: Optional[str] = None, api_key: Optional[str] = None) -> List[VmInfo]:
        return [VmInfo.from_api(v) for v in Http(base_url, api_key).json("GET", "/v1/vms")]

    def _path(self, rest: str = "") -> str:
        return f"/v1/vms/{urllib.parse.quote(self.id, safe='')}{rest}"

    def refresh(self) -> VmInfo:
        self.info = VmInfo.from_api(self._http.json("GET", self._path()))
        return self.info

    # -- running code --------------------------------------------------------------------------

    def exec(self, cmd: str, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None, timeout_ms: Optional[int] = None) -> ExecResult:
        """A shell command as uid 1000 in /workspace (or ``cwd``)."""
        body: Dict[str, Any] = {"cmd": cmd}
        if cwd:
            body["cwd"] = cwd
        if env:
            body["env"] = env
        if timeout_ms:
            body["timeoutMs"] = timeout_ms
        return ExecResult.from_api(self._http.json("POST", self._path("/exec"), body, timeout=(timeout_ms or 30_000) / 1000 + _ANSWER_GRACE_S))

    def run_ts(self, code: Optional[str] = None, path: Optional[str] = None, args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None, timeout_ms: Optional[int] = None, flags: Optional[List[str]] = None) -> RunResult:
        """TypeScript with Deno: inline ``code`` or a module at ``path`` under /workspace."""
        return self._run("run-ts", "denoFlags", code, path, args, env, timeout_ms, flags)

    def run_js(self, code: Optional[str] = None, path: Optional[str] = None, args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None, timeout_ms: Optional[int] = None, flags: Optional[List[str]] = None) -> RunResult:
        """JavaScript with Node: inline ``code`` or a module at ``path`` under /workspace."""
        return self._run("run-js", "nodeFlags", code, path, args, env, timeout_ms, flags)

    def _run(self, route: str, flags_field: str, code: Optional[str], path: Optional[str], args: Optional[List[str]], env: Optional[Dict[str, str]], timeout_ms: Optional[int], flags: Optional[List[str]]) -> RunResult:
        if (code is None) == (path is None):
            raise ValueError("give exactly one of code= and path=")
        body: Dict[str, Any] = {"code": code} if code is not None else {"path": path}
        if args:
            body["args"] = args
        if env:
            body["env"] = _env_list(env)
        if timeout_ms:
            body["timeoutMs"] = timeout_ms
        if flags:
            body[flags_field] = flags
        return RunResult.from_api(self._http.json("POST", self._path(f"/{route}"), body, timeout=(timeout_ms or 30_000) / 1000 + _ANSWER_GRACE_S))

    # -- lifecycle -------------------------------------------------------------------------------

    def snapshot(self) -> SnapshotInfo:
        """Memory, device state and disk; ``Sandbox.create(snapshot_id=…)`` resumes from it."""
        return SnapshotInfo.from_api(self._http.json("POST", self._path("/snapshots")))

    def pause(self) -> None:
        self._http.json("POST", self._path("/pause"))

    def resume(self) -> None:
        self._http.json("POST", self._path("/resume"))

    def stop(self) -> None:
        self._http.json("POST", self._path("/stop"))

    def start(self) -> None:
        self._http.json("POST", self._path("/start"))

    def delete(self) -> None:
        """Deletes the VM and everything it has on the host."""
        self._http.json("DELETE", self._path())

    def logs(self, type: str = "console.log", tail: int = 200) -> List[str]:
        return self._http.json("GET", self._path(f"/logs{query(type=type, tail=tail)}"))["lines"]

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.delete()
        except RdsApiError as e:
            if e.code != "vm_not_found":
                raise


class SandboxFiles:
    """Files in the VM as tar.gz archives (paths under /workspace)."""

    def __init__(self, http: Http, vm_id: str) -> None:
        self._http = http
        self._base = f"/v1/vms/{urllib.parse.quote(vm_id, safe='')}/files"

    def upload(self, archive: Union[bytes, bytearray], dest: str = "/workspace") -> None:
        """Unpacks a tar.gz into ``dest`` (made if missing)."""
        self._http.send("POST", f"{self._base}/upload{query(dest=dest)}", bytes(archive), "application/gzip")

    def download(self, path: str) -> bytes:
        """``path`` (a file or a directory) as tar.gz bytes."""
        return self._http.send("GET", f"{self._base}/download{query(path=path)}")


class SandboxNetwork:
    """The VM's egress policy, enforced on the host."""

    def __init__(self, http: Http, vm_id: str) -> None:
        self._http = http
        self._path = f"/v1/vms/{urllib.parse.quote(vm_id, safe='')}/network"

    def get(self) -> NetworkInfo:
        return NetworkInfo.from_api(self._http.json("GET", self._path))

    def update(self, allow_ips: Optional[List[str]] = None, allow_domains: Optional[List[str]] = None, outbound_internet: Optional[bool] = None) -> NetworkInfo:
        """Applies at once, also to open connections; what is not given stays as it is."""
        body: Dict[str, Any] = {}
        if allow_ips is not None:
            body["allowIps"] = allow_ips
        if allow_domains is not None:
            body["allowDomains"] = allow_domains
        if outbound_internet is not None:
            body["outboundInternet"] = outbound_internet
        return NetworkInfo.from_api(self._http.json("PATCH", self._path, body))
