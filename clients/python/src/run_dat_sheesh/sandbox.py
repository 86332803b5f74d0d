"""A sandbox is one VM. ``Sandbox.create()`` makes one (a context manager that deletes it on
exit), ``Sandbox.connect(id)`` takes one that exists."""

from __future__ import annotations

import urllib.parse
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from ._http import Http, query
from .errors import RdsApiError
from .types import ExecResult, FileEntry, NetworkInfo, OutputEvent, PeerLink, ProcessInfo, RunResult, SnapshotInfo, VmInfo

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
        self.processes = SandboxProcesses(http, info.id)

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
        ttl_seconds: Optional[int] = None,
        on_expire: Optional[str] = None,
        labels: Optional[Dict[str, str]] = None,
        template: Optional[str] = None,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: float = 120.0,
    ) -> "Sandbox":
        """Creates a VM (no network unless asked) and returns once it runs. ``ttl_seconds``: it is
        deleted (or paused, ``on_expire="pause"``) that long after it runs; ``template``: spawned
        from that template's build (its shape and image; cpu, mem_mb and image_id do not apply)."""
        http = Http(base_url, api_key, timeout)
        lifetime: Dict[str, Any] = {}
        if ttl_seconds is not None:
            lifetime["ttlSeconds"] = ttl_seconds
        if on_expire is not None:
            lifetime["onExpire"] = on_expire
        if labels is not None:
            lifetime["labels"] = labels
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
        if template is not None:
            spawn = {k: v for k, v in body.items() if k in ("allowIps", "allowDomains", "outboundInternet", "secretEnv", "peerLinks")}
            if allow_ips is None:
                spawn.pop("allowIps")  # the template's own policy
            return cls(http, VmInfo.from_api(http.json("POST", f"/v1/templates/{urllib.parse.quote(template, safe='')}/vms", {**spawn, **lifetime})))
        return cls(http, VmInfo.from_api(http.json("POST", "/v1/vms", {**body, **lifetime})))

    @classmethod
    def connect(cls, vm_id: str, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: float = 120.0) -> "Sandbox":
        http = Http(base_url, api_key, timeout)
        return cls(http, VmInfo.from_api(http.json("GET", f"/v1/vms/{urllib.parse.quote(vm_id, safe='')}")))

    @staticmethod
    def list(labels: Optional[Dict[str, str]] = None, base_url: Optional[str] = None, api_key: Optional[str] = None) -> List[VmInfo]:
        """The VMs, only those carrying all of ``labels`` when given."""
        q = urllib.parse.urlencode([("label", f"{k}={v}") for k, v in (labels or {}).items()])
        return [VmInfo.from_api(v) for v in Http(base_url, api_key).json("GET", f"/v1/vms{'?' + q if q else ''}")]

    def _path(self, rest: str = "") -> str:
        return f"/v1/vms/{urllib.parse.quote(self.id, safe='')}{rest}"

    def extend(self, ttl_seconds: int) -> VmInfo:
        """The VM now expires ``ttl_seconds`` from now (a VM without a TTL gets one)."""
        self.info = VmInfo.from_api(self._http.json("POST", self._path("/extend"), {"ttlSeconds": ttl_seconds}))
        return self.info

    def set_labels(self, labels: Dict[str, Optional[str]], merge: bool = True) -> VmInfo:
        """Merges ``labels`` (None removes a key), or replaces them all with ``merge=False``."""
        self.info = VmInfo.from_api(self._http.json("PATCH" if merge else "PUT", self._path("/labels"), labels))
        return self.info

    def preview_url(self, port: int) -> str:
        """A browser URL for a server on ``port`` in the VM (it carries a token; see the preview docs)."""
        return self._http.json("GET", self._path(f"/ports/{int(port)}/url"))["url"]

    def refresh(self) -> VmInfo:
        self.info = VmInfo.from_api(self._http.json("GET", self._path()))
        return self.info

    # -- running code --------------------------------------------------------------------------

    def exec(
        self,
        cmd: str,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        timeout_ms: Optional[int] = None,
        on_stdout: Optional[Callable[[str], None]] = None,
        on_stderr: Optional[Callable[[str], None]] = None,
    ) -> ExecResult:
        """A shell command as uid 1000 in /workspace (or ``cwd``). With ``on_stdout`` /
        ``on_stderr`` its output also arrives as it happens (text, as the command wrote it)."""
        body: Dict[str, Any] = {"cmd": cmd}
        if cwd:
            body["cwd"] = cwd
        if env:
            body["env"] = env
        if timeout_ms:
            body["timeoutMs"] = timeout_ms
        timeout = (timeout_ms or 30_000) / 1000 + _ANSWER_GRACE_S
        if on_stdout is None and on_stderr is None:
            return ExecResult.from_api(self._http.json("POST", self._path("/exec"), body, timeout=timeout))
        out: Dict[str, List[bytes]] = {"stdout": [], "stderr": []}
        for raw in self._http.lines("POST", self._path("/exec"), {**body, "stream": True}, timeout=timeout):
            e = OutputEvent.from_api(raw)
            if e.type in out:
                out[e.type].append(e.data)
                callback = on_stdout if e.type == "stdout" else on_stderr
                if callback is not None:
                    callback(e.text)
            elif e.type == "exit":
                return ExecResult(e.exit_code if e.exit_code is not None else -1, b"".join(out["stdout"]).decode("utf-8", "replace"), b"".join(out["stderr"]).decode("utf-8", "replace"),
                                  e.timed_out, raw.get("stdoutTruncated", False), raw.get("stderrTruncated", False), raw.get("durationMs", 0))
            else:
                raise RdsApiError(502, e.code or "agent_unavailable", e.message or "the run failed")
        raise RdsApiError(502, "agent_unavailable", "the stream ended without an exit event")

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
    """Files in the VM, one at a time or as tar.gz archives (paths under /workspace, with uid 1000's rights)."""

    def __init__(self, http: Http, vm_id: str) -> None:
        self._http = http
        self._base = f"/v1/vms/{urllib.parse.quote(vm_id, safe='')}/files"

    def read(self, path: str, binary: bool = False) -> Union[str, bytes]:
        """A file's content: text (UTF-8), or bytes with ``binary=True``."""
        data = self._http.send("GET", f"{self._base}{query(path=path)}")
        return data if binary else data.decode("utf-8")

    def write(self, path: str, data: Union[str, bytes], mode: Optional[str] = None) -> None:
        """Writes a file whole (parents made); ``mode`` as octal text, e.g. "755"."""
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._http.send("PUT", f"{self._base}{query(path=path, mode=mode)}", body, "application/octet-stream")

    def list(self, path: str = "/workspace", depth: Optional[int] = None) -> List[FileEntry]:
        return [FileEntry.from_api(e) for e in self._http.json("GET", f"{self._base}/list{query(path=path, depth=depth)}")]

    def stat(self, path: str) -> FileEntry:
        return FileEntry.from_api(self._http.json("GET", f"{self._base}/stat{query(path=path)}"))

    def remove(self, path: str, recursive: bool = False) -> None:
        self._http.send("DELETE", f"{self._base}{query(path=path, recursive=recursive or None)}")

    def mkdir(self, path: str) -> None:
        self._http.json("POST", f"{self._base}/mkdir", {"path": path})

    def move(self, src: str, dst: str) -> None:
        self._http.json("POST", f"{self._base}/move", {"from": src, "to": dst})

    def upload(self, archive: Union[bytes, bytearray], dest: str = "/workspace") -> None:
        """Unpacks a tar.gz into ``dest`` (made if missing)."""
        self._http.send("POST", f"{self._base}/upload{query(dest=dest)}", bytes(archive), "application/gzip")

    def download(self, path: str) -> bytes:
        """``path`` (a file or a directory) as tar.gz bytes."""
        return self._http.send("GET", f"{self._base}/download{query(path=path)}")


class SandboxProcesses:
    """Background processes: they outlive the call that started them (and a manager restart)."""

    def __init__(self, http: Http, vm_id: str) -> None:
        self._http = http
        self._base = f"/v1/vms/{urllib.parse.quote(vm_id, safe='')}/processes"

    def start(
        self,
        cmd: Optional[str] = None,
        args: Optional[List[str]] = None,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        timeout_ms: Optional[int] = None,
        stdin: bool = False,
        pty: Optional[Dict[str, int]] = None,
        tag: Optional[str] = None,
    ) -> ProcessInfo:
        """Starts ``cmd`` (a shell line) or ``args`` (argv, no shell) as uid 1000; ``stdin=True``
        keeps its stdin open for ``send_stdin``; ``pty={"cols": 80, "rows": 24}`` runs it on a terminal."""
        if (cmd is None) == (args is None):
            raise ValueError("give exactly one of cmd= and args=")
        body: Dict[str, Any] = {"cmd": cmd} if cmd is not None else {"args": args}
        for key, value in (("cwd", cwd), ("env", env), ("timeoutMs", timeout_ms), ("pty", pty), ("tag", tag)):
            if value is not None:
                body[key] = value
        if stdin:
            body["stdin"] = True
        return ProcessInfo.from_api(self._http.json("POST", self._base, body))

    def list(self) -> List[ProcessInfo]:
        return [ProcessInfo.from_api(p) for p in self._http.json("GET", self._base)]

    def get(self, pid: int) -> ProcessInfo:
        return ProcessInfo.from_api(self._http.json("GET", f"{self._base}/{pid}"))

    def output(self, pid: int, since: Optional[int] = None, follow: bool = False, timeout: Optional[float] = None) -> Iterator[OutputEvent]:
        """The output kept from byte ``since`` on; with ``follow=True``, new output as it comes
        until the exit event. Stop iterating (or close the iterator) to stop reading."""
        # Following waits on the process, not on the network: no read timeout unless asked.
        wait = timeout if timeout is not None else (None if follow else self._http.timeout)
        for raw in self._http.lines("GET", f"{self._base}/{pid}/output{query(since=since, follow=follow or None)}", timeout=wait or 10 ** 9):
            yield OutputEvent.from_api(raw)

    def send_stdin(self, pid: int, data: Union[str, bytes], eof: bool = False) -> None:
        """Writes to the process's stdin (or terminal); ``eof=True`` closes it after."""
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._http.send("POST", f"{self._base}/{pid}/stdin{query(eof=eof or None)}", body, "application/octet-stream")

    def signal(self, pid: int, signal: str) -> None:
        """SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT or SIGWINCH."""
        self._http.json("POST", f"{self._base}/{pid}/signal", {"signal": signal})

    def kill(self, pid: int) -> None:
        """Kills the process group and everything it started; it stays listed as exited."""
        self._http.send("DELETE", f"{self._base}/{pid}")


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
