"""``AsyncSandbox``: the same calls as coroutines, for asyncio programs. The standard library has
no asynchronous HTTP client, so each call runs the blocking one in a worker thread
(``asyncio.to_thread``): the event loop never waits on the network."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from .sandbox import Sandbox
from .types import ExecResult, NetworkInfo, RunResult, SnapshotInfo, VmInfo


class AsyncSandbox:
    def __init__(self, sync: Sandbox) -> None:
        self._sync = sync
        self.id = sync.id

    @property
    def info(self) -> VmInfo:
        return self._sync.info

    @classmethod
    async def create(cls, **kwargs: Any) -> "AsyncSandbox":
        return cls(await asyncio.to_thread(lambda: Sandbox.create(**kwargs)))

    @classmethod
    async def connect(cls, vm_id: str, **kwargs: Any) -> "AsyncSandbox":
        return cls(await asyncio.to_thread(lambda: Sandbox.connect(vm_id, **kwargs)))

    @staticmethod
    async def list(**kwargs: Any) -> List[VmInfo]:
        return await asyncio.to_thread(lambda: Sandbox.list(**kwargs))

    async def exec(self, cmd: str, **kwargs: Any) -> ExecResult:
        return await asyncio.to_thread(lambda: self._sync.exec(cmd, **kwargs))

    async def run_ts(self, code: Optional[str] = None, **kwargs: Any) -> RunResult:
        return await asyncio.to_thread(lambda: self._sync.run_ts(code, **kwargs))

    async def run_js(self, code: Optional[str] = None, **kwargs: Any) -> RunResult:
        return await asyncio.to_thread(lambda: self._sync.run_js(code, **kwargs))

    async def upload(self, archive: bytes, dest: str = "/workspace") -> None:
        await asyncio.to_thread(lambda: self._sync.files.upload(archive, dest))

    async def download(self, path: str) -> bytes:
        return await asyncio.to_thread(lambda: self._sync.files.download(path))

    async def network(self) -> NetworkInfo:
        return await asyncio.to_thread(self._sync.network.get)

    async def snapshot(self) -> SnapshotInfo:
        return await asyncio.to_thread(self._sync.snapshot)

    async def pause(self) -> None:
        await asyncio.to_thread(self._sync.pause)

    async def resume(self) -> None:
        await asyncio.to_thread(self._sync.resume)

    async def delete(self) -> None:
        await asyncio.to_thread(self._sync.delete)

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._sync.__exit__, None, None, None)
