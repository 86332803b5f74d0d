"""run-dat-sheesh: real microVM sandboxes for untrusted code."""

from .async_sandbox import AsyncSandbox
from .errors import RdsApiError, RdsConnectionError, RdsError
from .sandbox import Sandbox, SandboxFiles, SandboxNetwork
from .types import ExecResult, NetworkInfo, PeerLink, RunResult, SnapshotInfo, VmInfo

__all__ = [
    "AsyncSandbox", "ExecResult", "NetworkInfo", "PeerLink", "RdsApiError", "RdsConnectionError", "RdsError",
    "RunResult", "Sandbox", "SandboxFiles", "SandboxNetwork", "SnapshotInfo", "VmInfo",
]
__version__ = "0.1.0"
