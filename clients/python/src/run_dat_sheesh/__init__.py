"""run-dat-sheesh: real microVM sandboxes for untrusted code."""

from .async_sandbox import AsyncSandbox
from .errors import RdsApiError, RdsConnectionError, RdsError
from .sandbox import Sandbox, SandboxFiles, SandboxNetwork, SandboxProcesses
from .types import ExecResult, FileEntry, NetworkInfo, OutputEvent, PeerLink, ProcessInfo, RunResult, SnapshotInfo, VmInfo

__all__ = [
    "AsyncSandbox", "ExecResult", "FileEntry", "NetworkInfo", "OutputEvent", "PeerLink", "ProcessInfo", "RdsApiError", "RdsConnectionError", "RdsError",
    "RunResult", "Sandbox", "SandboxFiles", "SandboxNetwork", "SandboxProcesses", "SnapshotInfo", "VmInfo",
]
__version__ = "0.1.0"
