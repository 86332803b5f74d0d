"""``AsyncSandbox``: the same calls as coroutines, for asyncio programs. The standard library has
no asynchronous HTTP client, so each call runs the blocking one in a worker thread
(``asyncio.to_thread``): the event loop never waits on the network."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, List, Optional, Union

from .sandbox import Sandbox, SandboxProcesses
from .types import ExecResult, NetworkInfo, OutputEvent, ProcessInfo, RunResult, SnapshotInfo, VmInfo


class AsyncSandbox:
    def __init__(self, sync: Sandbox) -> None:
        self._sync = sync
        self.id = sync.id
        self.processes = AsyncProcesses(sync.processes)

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
        """As ``Sandbox.exec``; ``on_stdout`` / ``on_stderr`` are called from the worker thread."""
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


class AsyncProcesses:
    """``Sandbox.processes`` as coroutines; ``output`` is an async iterator fed by a worker thread."""

    def __init__(self, sync: SandboxProcesses) -> None:
        self._sync = sync

    async def start(self, **kwargs: Any) -> ProcessInfo:
        return await asyncio.to_thread(lambda: self._sync.start(**kwargs))

    async def list(self) -> List[ProcessInfo]:
        return await asyncio.to_thread(self._sync.list)

    async def get(self, pid: int) -> ProcessInfo:
        return await asyncio.to_thread(lambda: self._sync.get(pid))

    async def send_stdin(self, pid: int, data: Union[str, bytes], eof: bool = False) -> None:
        await asyncio.to_thread(lambda: self._sync.send_stdin(pid, data, eof))

    async def signal(self, pid: int, signal: str) -> None:
        await asyncio.to_thread(lambda: self._sync.signal(pid, signal))

    async def kill(self, pid: int) -> None:
        await asyncio.to_thread(lambda: self._sync.kill(pid))

    async def output(self, pid: int, since: Optional[int] = None, follow: bool = False) -> AsyncIterator[OutputEvent]:
        loop = asyncio.get_running_loop()
        queue: "asyncio.Queue[Any]" = asyncio.Queue()
        done = object()
        events = self._sync.output(pid, since=since, follow=follow)

        def pump() -> None:
            try:
                for e in events:
                    loop.call_soon_threadsafe(queue.put_nowait, e)
            except BaseException as err:  # handed to the reader, raised there
                loop.call_soon_threadsafe(queue.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        worker = loop.run_in_executor(None, pump)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # A reader that stops early: the blocking read ends when its connection is closed.
            if not worker.done():
                try:
                    events.close()
                except ValueError:
                    pass  # the generator is still running in the worker; it ends with the process
