"""The Python `e2b` SDK's wire, against our manager and a real VM.

PyPI cannot be reached here, so the package itself is not installed: this file makes, with the
standard library only, the requests the Python SDK makes, as E2B's published specs describe them
(control-plane OpenAPI, envd's OpenAPI, process.proto and filesystem.proto, JSON codec of Connect
RPC). It tests the wire, not the package. Run by test/integration/e2b-python-wire.test.ts with
E2B_API_URL / E2B_API_KEY set to a manager.
"""
import base64
import http.client
import json
import os
import struct
import urllib.parse
import uuid

import pytest

API_URL = urllib.parse.urlsplit(os.environ['E2B_API_URL'])
API_KEY = os.environ['E2B_API_KEY']
ENVD_PORT = '49983'
INTERPRETER_PORT = '49999'
# What the Python SDK sends as the envd user: Basic auth with the user name and no password.
USER_AUTH = 'Basic ' + base64.b64encode(b'user:').decode()


def conn():
    return http.client.HTTPConnection(API_URL.hostname, API_URL.port, timeout=300)


def request(method, path, body=None, headers=None):
    c = conn()
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def control(method, path, payload=None):
    headers = {'X-API-KEY': API_KEY, 'User-Agent': 'e2b-python-sdk/wire-test'}
    body = None
    if payload is not None:
        headers['Content-Type'] = 'application/json'
        body = json.dumps(payload)
    status, _, data = request(method, path, body, headers)
    return status, (json.loads(data) if data else None)


@pytest.fixture(scope='module')
def sandbox():
    status, sbx = control('POST', '/sandboxes', {
        'templateID': 'base', 'timeout': 600, 'metadata': {'suite': 'py-wire'},
        'envVars': {'FROM_CREATE': 'yes'}, 'secure': True, 'autoPause': False,
    })
    assert status == 201, sbx
    yield sbx
    control('DELETE', '/sandboxes/' + sbx['sandboxID'])


def envd_headers(sbx, port=ENVD_PORT, **extra):
    h = {
        'E2b-Sandbox-Id': sbx['sandboxID'],
        'E2b-Sandbox-Port': port,
        'X-Access-Token': sbx['envdAccessToken'],
        'Authorization': USER_AUTH,
    }
    h.update(extra)
    return h


def unary(sbx, method, message):
    """A Connect unary call with the JSON codec."""
    headers = envd_headers(sbx, **{'Content-Type': 'application/json', 'Connect-Protocol-Version': '1'})
    status, _, data = request('POST', '/' + method, json.dumps(message), headers)
    return status, json.loads(data) if data else None


def envelope(message, flags=0):
    data = json.dumps(message).encode()
    return struct.pack('>BI', flags, len(data)) + data


def server_stream(sbx, method, message, timeout_ms=None, stop_after=None):
    """A Connect server stream (application/connect+json): enveloped request, enveloped events, then
    the end-of-stream envelope (flag 2). `stop_after(event)` true closes the connection there."""
    headers = envd_headers(sbx, **{'Content-Type': 'application/connect+json', 'Connect-Protocol-Version': '1', 'Keepalive-Ping-Interval': '50'})
    if timeout_ms is not None:
        headers['Connect-Timeout-Ms'] = str(timeout_ms)
    c = conn()
    c.request('POST', '/' + method, envelope(message), headers)
    r = c.getresponse()
    assert r.status == 200, r.read()
    assert r.getheader('Content-Type').startswith('application/connect+json')
    events, end = [], None
    while True:
        head = r.read(5)
        if len(head) < 5:
            break
        flags, n = struct.unpack('>BI', head)
        body = json.loads(r.read(n) or b'{}')
        if flags & 2:
            end = body
            break
        events.append(body)
        if stop_after and stop_after(body):
            break
    c.close()
    return events, end


def output_of(events, stream):
    return b''.join(base64.b64decode(e['event']['data'][stream]) for e in events if stream in e['event'].get('data', {}))


def test_create_answers_the_sdks_shape(sandbox):
    assert {'sandboxID', 'templateID', 'clientID', 'envdVersion', 'envdAccessToken'} <= set(sandbox)
    status, info = control('GET', '/sandboxes/' + sandbox['sandboxID'])
    assert status == 200
    assert info['metadata'] == {'suite': 'py-wire'}
    assert info['state'] == 'running'
    assert control('POST', '/sandboxes/%s/timeout' % sandbox['sandboxID'], {'timeout': 900})[0] == 204


def test_envd_health_and_token(sandbox):
    assert request('GET', '/health', headers=envd_headers(sandbox))[0] == 204
    wrong = envd_headers(sandbox)
    wrong['X-Access-Token'] = 'not-the-token'
    status, _, data = request('GET', '/health', headers=wrong)
    assert status == 401
    assert json.loads(data)['code'] == 401


def test_process_start_streams_start_data_end(sandbox):
    start = {'process': {'cmd': '/bin/bash', 'args': ['-l', '-c', 'echo hello; echo $FROM_CREATE; echo oops >&2; exit 3'], 'envs': {}, 'cwd': '/home/user'}, 'stdin': False}
    events, end = server_stream(sandbox, 'process.Process/Start', start, timeout_ms=60000)
    assert end == {} or 'error' not in end
    kinds = [next(iter(e['event'])) for e in events]
    assert kinds[0] == 'start' and isinstance(events[0]['event']['start']['pid'], int)
    assert kinds[-1] == 'end'
    assert set(kinds[1:-1]) <= {'data', 'keepalive'}
    assert output_of(events, 'stdout') == b'hello\nyes\n'
    assert output_of(events, 'stderr') == b'oops\n'
    assert events[-1]['event']['end']['exitCode'] == 3
    # proto3 JSON leaves zero values out: a 0 exit code is absent.
    events, _ = server_stream(sandbox, 'process.Process/Start', {'process': {'cmd': '/bin/bash', 'args': ['-l', '-c', 'true']}})
    assert events[-1]['event']['end'].get('exitCode', 0) == 0


# SIGKILL by the enum's name, as the SDK's kill sends it; SIGHUP by number (proto3 enums are open).
@pytest.mark.parametrize('signal', ['SIGNAL_SIGKILL', 1])
def test_background_process_listed_then_killed(sandbox, signal):
    tag = 'py-wire-' + uuid.uuid4().hex[:8]
    start = {'process': {'cmd': '/bin/bash', 'args': ['-l', '-c', 'sleep 600']}, 'tag': tag}
    events, _ = server_stream(sandbox, 'process.Process/Start', start, timeout_ms=0, stop_after=lambda e: 'start' in e['event'])
    pid = events[0]['event']['start']['pid']
    status, listed = unary(sandbox, 'process.Process/List', {})
    assert status == 200
    assert any(p['pid'] == pid and p.get('tag') == tag for p in listed.get('processes', []))
    status, _ = unary(sandbox, 'process.Process/SendSignal', {'process': {'pid': pid}, 'signal': signal})
    assert status == 200
    for _ in range(100):
        status, listed = unary(sandbox, 'process.Process/List', {})
        if all(p['pid'] != pid for p in listed.get('processes', [])):
            break
    else:
        pytest.fail('the killed process is still listed')


def test_filesystem_rpc_and_files_http(sandbox):
    status, made = unary(sandbox, 'filesystem.Filesystem/MakeDir', {'path': '/home/user/py-wire'})
    assert status == 200 and made['entry']['path'] == '/home/user/py-wire'

    boundary = 'wire' + uuid.uuid4().hex
    form = (
        '--%s\r\nContent-Disposition: form-data; name="file"; filename="hello.txt"\r\n'
        'Content-Type: application/octet-stream\r\n\r\nhi from python\r\n--%s--\r\n' % (boundary, boundary)
    ).encode()
    query = urllib.parse.urlencode({'path': '/home/user/py-wire/hello.txt', 'username': 'user'})
    status, _, data = request('POST', '/files?' + query, form, envd_headers(sandbox, **{'Content-Type': 'multipart/form-data; boundary=' + boundary}))
    assert status == 200, data
    assert json.loads(data)[0]['path'] == '/home/user/py-wire/hello.txt'

    status, _, data = request('GET', '/files?' + query, headers=envd_headers(sandbox))
    assert status == 200 and data == b'hi from python'

    status, listed = unary(sandbox, 'filesystem.Filesystem/ListDir', {'path': '/home/user/py-wire', 'depth': 1})
    assert status == 200
    entry = next(e for e in listed['entries'] if e['name'] == 'hello.txt')
    assert entry['type'] == 'FILE_TYPE_FILE' and entry['size'] == '14'  # int64 is a JSON string
    status, stat = unary(sandbox, 'filesystem.Filesystem/Stat', {'path': 'py-wire/hello.txt'})
    assert status == 200 and stat['entry']['path'] == '/home/user/py-wire/hello.txt'

    status, err = unary(sandbox, 'filesystem.Filesystem/Stat', {'path': '/home/user/py-wire/missing'})
    assert status == 404 and err['code'] == 'not_found'
    status, _ = unary(sandbox, 'filesystem.Filesystem/Remove', {'path': '/home/user/py-wire'})
    assert status == 200


def test_code_interpreter_execute_ndjson(sandbox):
    headers = envd_headers(sandbox, port=INTERPRETER_PORT, **{'Content-Type': 'application/json'})
    status, _, data = request('POST', '/execute', json.dumps({'code': 'print("py")\n6*7', 'context_id': None, 'language': None, 'env_vars': None}), headers)
    assert status == 200
    lines = [json.loads(line) for line in data.decode().splitlines() if line]
    assert {'type': 'stdout', 'text': 'py\n'}.items() <= lines[0].items()
    result = next(line for line in lines if line['type'] == 'result')
    assert result['text'] == '42' and result['is_main_result'] is True
    assert lines[-1]['type'] == 'end_of_execution'


def test_kill_twice():
    status, sbx = control('POST', '/sandboxes', {'templateID': 'base', 'timeout': 120})
    assert status == 201
    assert control('DELETE', '/sandboxes/' + sbx['sandboxID'])[0] == 204
    status, body = control('DELETE', '/sandboxes/' + sbx['sandboxID'])
    assert status == 404 and body['code'] == 404
