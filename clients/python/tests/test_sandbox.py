"""The Python SDK against a real manager with real VMs (RDS_BASE_URL / RDS_API_KEY given by the
suite: packages/manager/test/integration/python-sdk.test.ts runs this file)."""

import asyncio
import gzip
import io
import os
import tarfile

import pytest

from run_dat_sheesh import AsyncSandbox, RdsApiError, RdsConnectionError, Sandbox

MEM = int(os.environ.get("RDS_TEST_MEM_MB", "256"))


def tar_gz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def sb():
    with Sandbox.create(mem_mb=MEM) as sandbox:
        yield sandbox


def test_create_connect_list(sb):
    assert sb.info.state == "RUNNING" and sb.info.mem_mb == MEM and sb.info.created_by == "env:API_KEY"
    assert Sandbox.connect(sb.id).info.id == sb.id
    assert sb.id in [v.id for v in Sandbox.list()]


def test_exec(sb):
    sb.exec("mkdir -p /workspace/py")
    r = sb.exec('echo "$WHO in $(pwd)"; exit 4', cwd="/workspace/py", env={"WHO": "python"})
    assert (r.exit_code, r.stdout, r.timed_out) == (4, "python in /workspace/py\n", False)


def test_run_ts_and_js(sb):
    assert sb.run_ts("const n: number = 21; result.set({ n: n * 2 })").result == {"n": 42}
    assert sb.run_js("result.set(['js', 1 + 1])").result == ["js", 2]
    with pytest.raises(ValueError):
        sb.run_ts()


def test_files_round_trip(sb):
    sb.files.upload(tar_gz({"data/hello.txt": "from python\n"}), dest="/workspace/up")
    assert sb.exec("cat /workspace/up/data/hello.txt").stdout == "from python\n"
    with tarfile.open(fileobj=io.BytesIO(sb.files.download("/workspace/up/data")), mode="r:gz") as tar:
        names = tar.getnames()
        member = next(m for m in tar.getmembers() if m.name.endswith("hello.txt"))
        assert tar.extractfile(member).read() == b"from python\n", names


def test_network(sb):
    assert sb.network.get().effective["egress"] == "none"
    assert sb.network.update(allow_ips=["203.0.113.5"]).effective["egress"] == "list"
    sb.network.update(allow_ips=[])


def test_snapshot_and_clone(sb):
    sb.exec("echo kept > /workspace/kept.txt")
    snap = sb.snapshot()
    assert snap.kind == "user_overlay" and snap.source_vm_id == sb.id
    with Sandbox.create(mem_mb=MEM, snapshot_id=snap.id) as clone:
        assert clone.exec("cat /workspace/kept.txt").stdout == "kept\n"
        clone_id = clone.id
    with pytest.raises(RdsApiError) as gone:
        Sandbox.connect(clone_id)
    assert gone.value.status == 404 and gone.value.code == "vm_not_found"


def test_errors(sb):
    with pytest.raises(RdsApiError) as e:
        sb.exec("true", cwd="/etc")
    assert (e.value.status, e.value.code) == (400, "path_not_allowed") and "/workspace" in e.value.message
    assert e.value.request_id and len(e.value.request_id) == 36  # the manager's generated id
    with pytest.raises(RdsApiError) as e:
        Sandbox.create(cpu=99)
    assert e.value.code == "invalid_cpu"
    with pytest.raises(RdsApiError) as e:
        Sandbox.list(api_key="wrong-key-wrong-key")
    assert e.value.status == 401
    with pytest.raises(RdsConnectionError):
        Sandbox.list(base_url="http://127.0.0.1:9", api_key="k")


def test_async(sb):
    async def main():
        a = await AsyncSandbox.connect(sb.id)
        results = await asyncio.gather(a.exec("echo one"), a.exec("echo two"), a.run_ts("result.set(3)"))
        return [results[0].stdout, results[1].stdout, results[2].result]

    assert asyncio.run(main()) == ["one\n", "two\n", 3]


def test_single_files(sb):
    sb.files.write("/workspace/pf/a.txt", "héllo\n")
    assert sb.files.read("/workspace/pf/a.txt") == "héllo\n"
    sb.files.write("/workspace/pf/b.bin", b"\x00\xff\x01", mode="600")
    assert sb.files.read("/workspace/pf/b.bin", binary=True) == b"\x00\xff\x01"
    assert sb.files.stat("/workspace/pf/b.bin").mode == "600"
    assert [e.name for e in sb.files.list("/workspace/pf")] == ["a.txt", "b.bin"]
    sb.files.mkdir("/workspace/pf/d")
    sb.files.move("/workspace/pf/a.txt", "/workspace/pf/d/a.txt")
    with pytest.raises(RdsApiError) as e:
        sb.files.remove("/workspace/pf/d")
    assert e.value.code == "directory_not_empty"
    sb.files.remove("/workspace/pf/d", recursive=True)
    with pytest.raises(RdsApiError) as e:
        sb.files.read("/workspace/pf/d/a.txt")
    assert e.value.status == 404


def test_exec_streams_output_as_it_happens(sb):
    seen = []
    r = sb.exec("echo first; sleep 1; echo second >&2; exit 5", on_stdout=lambda t: seen.append(("out", t)), on_stderr=lambda t: seen.append(("err", t)))
    assert (r.exit_code, r.stdout, r.stderr) == (5, "first\n", "second\n")
    assert seen == [("out", "first\n"), ("err", "second\n")]


def test_background_process_stdin_output_kill(sb):
    p = sb.processes.start(cmd='while read -r l; do echo "got:$l"; done', stdin=True, tag="py")
    assert p.state == "running" and p.tag == "py" and p.stdin
    assert p.pid in [x.pid for x in sb.processes.list()]
    sb.processes.send_stdin(p.pid, "one\ntwo\n", eof=True)
    events = list(sb.processes.output(p.pid, follow=True))
    assert b"".join(e.data for e in events if e.type == "stdout") == b"got:one\ngot:two\n"
    assert events[-1].type == "exit" and events[-1].exit_code == 0
    # From an offset: only what came after it.
    assert b"".join(e.data for e in sb.processes.output(p.pid, since=len("got:one\n")) if e.type == "stdout") == b"got:two\n"
    long = sb.processes.start(args=["sleep", "300"])
    sb.processes.kill(long.pid)
    exit_event = [e for e in sb.processes.output(long.pid, follow=True) if e.type == "exit"][0]
    assert exit_event.exit_code != 0 and sb.processes.get(long.pid).state == "exited"
    with pytest.raises(RdsApiError) as e:
        sb.processes.get(999999)
    assert e.value.code == "process_not_found"


def test_async_processes(sb):
    async def main():
        a = await AsyncSandbox.connect(sb.id)
        p = await a.processes.start(cmd="echo async-out; exit 3")
        return [e async for e in a.processes.output(p.pid, follow=True)]

    events = asyncio.run(main())
    assert b"".join(e.data for e in events if e.type == "stdout") == b"async-out\n" and events[-1].exit_code == 3


def test_ttl_labels_and_preview_url(sb):
    with Sandbox.create(mem_mb=MEM, ttl_seconds=600, labels={"suite": "python", "pid": str(os.getpid())}) as short:
        assert short.info.ttl_seconds == 600 and short.info.on_expire == "delete" and short.info.expires_at
        assert short.info.labels == {"suite": "python", "pid": str(os.getpid())}
        assert [v.id for v in Sandbox.list(labels={"pid": str(os.getpid())})] == [short.id]
        before = short.info.expires_at
        assert short.extend(3600).expires_at > before
        assert short.set_labels({"suite": None, "extra": "1"}).labels == {"pid": str(os.getpid()), "extra": "1"}
        assert Sandbox.list(labels={"suite": "python", "pid": str(os.getpid())}) == []
    url = sb.preview_url(8000)
    assert url.startswith("http://8000-" + sb.id + ".") and "rds_preview_token=" in url
    with pytest.raises(RdsApiError) as e:
        Sandbox.create(mem_mb=MEM, labels={"bad key": "x"})
    assert e.value.code == "invalid_labels"
