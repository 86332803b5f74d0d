"""The API's shapes, as dataclasses with Python names (camelCase fields become snake_case)."""

from __future__ import annotations

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

    @staticmethod
    def from_api(v: Dict[str, Any]) -> "VmInfo":
        return VmInfo(
            id=v["id"], state=v["state"], cpu=v["cpu"], mem_mb=v["memMb"], image_id=v["imageId"], guest_ip=v.get("guestIp"),
            allow_ips=v.get("allowIps", []), allow_domains=v.get("allowDomains", []), outbound_internet=v.get("outboundInternet", False),
            provision_mode=v.get("provisionMode"), source_snapshot_id=v.get("sourceSnapshotId"), created_at=v["createdAt"],
            started_at=v.get("startedAt"), boot_ms=v.get("bootMs"), last_error=v.get("lastError"), created_by=v.get("createdBy"),
            peer_links=[PeerLink(p["alias"], p["vmId"], p.get("sourceMode", "hidden")) for p in v.get("peerLinks", [])],
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
