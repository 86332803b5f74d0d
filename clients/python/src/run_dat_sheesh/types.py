"""The API's shapes, as dataclasses with Python names (camelCase fields become snake_case)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class PeerLink:
    alias: str
    vm_id: str
    source_mode: str = "hidden"


@dataclass(frozen=True)
class VmInfo:
    id: str
    state: str
    cpu: int
    mem_mb: int
    image_id: str
    guest_ip: Optional[str]
    allow_ips: List[str]
    allow_domains: List[str]
    outbound_internet: bool
    provision_mode: Optional[str]
    source_snapshot_id: Optional[str]
    created_at: str
    started_at: Optional[str]
    boot_ms: Optional[int]
    last_error: Optional[str]
    created_by: Optional[str]
    peer_links: List[PeerLink] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)
    #: When the VM expires (ISO 8601); None while no clock runs.
    expires_at: Optional[str] = None
    ttl_seconds: Optional[int] = None
    on_expire: str = "delete"

    @staticmethod
    def from_api(v: Dict[str, Any]) -> "VmInfo":
        return VmInfo(
            id=v["id"], state=v["state"], cpu=v["cpu"], mem_mb=v["memMb"], image_id=v["imageId"], guest_ip=v.get("guestIp"),
            allow_ips=v.get("allowIps", []), allow_domains=v.get("allowDomains", []), outbound_internet=v.get("outboundInternet", False),
            provision_mode=v.get("provisionMode"), source_snapshot_id=v.get("sourceSnapshotId"), created_at=v["createdAt"],
            started_at=v.get("startedAt"), boot_ms=v.get("bootMs"), last_error=v.get("lastError"), created_by=v.get("createdBy"),
            peer_links=[PeerLink(p["alias"], p["vmId"], p.get("sourceMode", "hidden")) for p in v.get("peerLinks", [])],
            labels=v.get("labels") or {}, expires_at=v.get("expiresAt"), ttl_seconds=v.get("ttlSeconds"), on_expire=v.get("onExpire", "delete"),
        )


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: float

    @staticmethod
    def from_api(r: Dict[str, Any]) -> "ExecResult":
        return ExecResult(r["exitCode"], r["stdout"], r["stderr"], r.get("timedOut", False), r.get("stdoutTruncated", False), r.get("stderrTruncated", False), r.get("durationMs", 0))


@dataclass(frozen=True)
class RunResult(ExecResult):
    #: The value given to result.set(v), if any.
    result: Any = None
    #: The value given to result.error(e), or the uncaught error, if any.
    error: Any = None

    @staticmethod
    def from_api(r: Dict[str, Any]) -> "RunResult":
        e = ExecResult.from_api(r)
        return RunResult(e.exit_code, e.stdout, e.stderr, e.timed_out, e.stdout_truncated, e.stderr_truncated, e.duration_ms, r.get("result"), r.get("error"))


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    kind: str
    created_at: str
    cpu: int
    mem_mb: int
    image_id: str
    source_vm_id: Optional[str]
    contains_secrets: bool
    created_by: Optional[str]

    @staticmethod
    def from_api(s: Dict[str, Any]) -> "SnapshotInfo":
        return SnapshotInfo(s["id"], s["kind"], s["createdAt"], s["cpu"], s["memMb"], s["imageId"], s.get("sourceVmId"), s.get("containsSecrets", False), s.get("createdBy"))


@dataclass(frozen=True)
class FileEntry:
    name: str
    #: Absolute, under /workspace.
    path: str
    #: "file", "dir" or "symlink" (a link is described as the link).
    type: str
    size: int
    #: Permission bits as octal text, e.g. "644".
    mode: str
    mtime: str

    @staticmethod
    def from_api(e: Dict[str, Any]) -> "FileEntry":
        return FileEntry(e["name"], e["path"], e["type"], e["size"], e["mode"], e["mtime"])


@dataclass(frozen=True)
class NetworkInfo:
    guest_ip: Optional[str]
    gateway: str
    allow_ips: List[str]
    allow_domains: List[str]
    outbound_internet: bool
    #: How the host enforces it now: egress none|list|all, dns none|all|listed.
    effective: Dict[str, Any]

    @staticmethod
    def from_api(n: Dict[str, Any]) -> "NetworkInfo":
        return NetworkInfo(n.get("guestIp"), n["gateway"], n["allowIps"], n["allowDomains"], n["outboundInternet"], n["effective"])


@dataclass(frozen=True)
class OutputEvent:
    """One event of a streamed run or of a process's output."""

    #: "stdout", "stderr", "exit" or "error".
    type: str
    #: The bytes of a stdout/stderr event.
    data: bytes = b""
    #: Byte offset of ``data`` in its stream (resume after it with ``since=offset + len(data)``).
    offset: Optional[int] = None
    exit_code: Optional[int] = None
    timed_out: bool = False
    #: An error event's code and sentence.
    code: Optional[str] = None
    message: Optional[str] = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    @staticmethod
    def from_api(e: Dict[str, Any]) -> "OutputEvent":
        kind = e["type"]
        if kind in ("stdout", "stderr"):
            raw = e["data"].encode("utf-8") if "data" in e else base64.b64decode(e.get("dataBase64", ""))
            return OutputEvent(kind, raw, e.get("offset"))
        if kind == "exit":
            return OutputEvent(kind, exit_code=e["exitCode"], timed_out=e.get("timedOut", False))
        return OutputEvent(kind, code=e.get("code"), message=e.get("message"))


@dataclass(frozen=True)
class ProcessInfo:
    """A background process, as the API shows it."""

    pid: int
    cmd: str
    state: str
    started_at: str
    stdin: bool
    stdout_bytes: int
    stderr_bytes: int
    readers: int
    tag: Optional[str] = None
    args: Optional[List[str]] = None
    exit_code: Optional[int] = None
    timed_out: Optional[bool] = None
    ended_at: Optional[str] = None
    pty: Optional[Dict[str, int]] = None

    @staticmethod
    def from_api(p: Dict[str, Any]) -> "ProcessInfo":
        return ProcessInfo(
            pid=p["pid"], cmd=p["cmd"], state=p["state"], started_at=p["startedAt"], stdin=p["stdin"], stdout_bytes=p["stdoutBytes"],
            stderr_bytes=p["stderrBytes"], readers=p["readers"], tag=p.get("tag"), args=p.get("args"), exit_code=p.get("exitCode"),
            timed_out=p.get("timedOut"), ended_at=p.get("endedAt"), pty=p.get("pty"),
        )
