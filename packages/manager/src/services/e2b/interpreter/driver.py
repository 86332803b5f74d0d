# The code interpreter's driver: one per E2B code context, run inside the sandbox as the sandbox
# user by our background-process machinery (a process like any other: uid 1000, its cgroup,
# no_new_privs, the VM's limits). The manager sends this source on stdin to a short bootstrap
# (code-context-process.ts), then speaks JSON lines with it.
#
# User output and the protocol never share a file descriptor: the protocol moves to private
# descriptors (os.dup: not inherited by subprocesses), fd 0 becomes /dev/null, and fds 1 and 2
# become pipes that a thread here reads and forwards as stdout/stderr messages. So print(),
# os.write(1, ...) and a subprocess's output all arrive, as they come, tagged as output, and a
# program reading stdin cannot eat the manager's commands.
#
# In:  {"type": "execute", "id", "code", "env_vars"} | {"type": "interrupt", "id"}
# Out: {"type": "ready"} once, then per execution (all with its "id"): stdout / stderr {text},
#      result {text, html, png, ... , is_main_result}, error {name, value, traceback},
#      number_of_executions {execution_count}, and last end_of_execution.
import _ast
import base64
import codecs
import json
import os
import queue
import selectors
import signal
import sys
import threading
import types

DRIVER_FILE = '<rds-interpreter>'
# inspect.CO_COROUTINE, without importing inspect: imports are the driver's start-up cost under
# emulation, so asyncio (with ssl, the largest) is imported only by a cell that awaits.
CO_COROUTINE = 0x80
CHUNK = 32 * 1024

PROTO_IN = os.dup(0)
PROTO_OUT = os.dup(1)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
OUT_R, _out_w = os.pipe()
ERR_R, _err_w = os.pipe()
os.dup2(_out_w, 1)
os.dup2(_err_w, 2)
os.close(_out_w)
os.close(_err_w)
WAKE_R, WAKE_W = os.pipe()

_write_lock = threading.Lock()
# The execution under way (its id), read by the output thread and the interrupt handler.
_state = {'id': None, 'in_user_code': False}
_state_lock = threading.Lock()
_MAIN_THREAD = threading.main_thread().ident


def send(msg):
    data = memoryview((json.dumps(msg, ensure_ascii=True, default=repr) + '\n').encode('ascii'))
    with _write_lock:
        while data:
            data = data[os.write(PROTO_OUT, data):]


# -- output: the pipes on fds 1 and 2, forwarded as messages -------------------------------------
_decoders = {
    OUT_R: ('stdout', codecs.getincrementaldecoder('utf-8')('replace')),
    ERR_R: ('stderr', codecs.getincrementaldecoder('utf-8')('replace')),
}
_drained = threading.Event()


def _forward(fd, data):
    name, decoder = _decoders[fd]
    text = decoder.decode(data)
    if text:
        send({'id': _state['id'], 'type': name, 'text': text})


def _drain(fd):
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            _forward(fd, data)
    finally:
        os.set_blocking(fd, True)


def _pump():
    sel = selectors.DefaultSelector()
    for fd in (OUT_R, ERR_R, WAKE_R):
        sel.register(fd, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fd == WAKE_R:
                os.read(WAKE_R, 64)
                _drain(OUT_R)
                _drain(ERR_R)
                _drained.set()
            else:
                _forward(key.fd, os.read(key.fd, CHUNK))


def flush_output():
    """Everything written to fds 1 and 2 so far is forwarded before this returns."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    _drained.clear()
    os.write(WAKE_W, b'x')
    _drained.wait()


# -- commands: read on their own thread, so an interrupt reaches a busy execution ----------------
_commands = queue.Queue()


def _read_commands():
    buf = b''
    while True:
        data = os.read(PROTO_IN, 65536)
        if not data:
            _commands.put(None)
            return
        buf += data
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get('type') == 'interrupt':
                with _state_lock:
                    if msg.get('id') is not None and msg.get('id') == _state['id']:
                        # To the main thread itself: a signal to the process may land on this
                        # thread, and then a main thread blocked in sleep() or read() never wakes.
                        signal.pthread_kill(_MAIN_THREAD, signal.SIGINT)
            else:
                _commands.put(msg)


def _on_sigint(signum, frame):
    # Only user code is interrupted; a late interrupt finds the driver between executions.
    if _state['in_user_code']:
        raise KeyboardInterrupt


# -- execution -----------------------------------------------------------------------------------
main_module = types.ModuleType('__main__')
namespace = main_module.__dict__
namespace['__builtins__'] = __builtins__
_loop = None
_count = 0

REPR_METHODS = (
    ('_repr_html_', 'html'), ('_repr_markdown_', 'markdown'), ('_repr_svg_', 'svg'), ('_repr_png_', 'png'),
    ('_repr_jpeg_', 'jpeg'), ('_repr_pdf_', 'pdf'), ('_repr_latex_', 'latex'), ('_repr_json_', 'json'),
    ('_repr_javascript_', 'javascript'),
)
MIME_KEYS = {
    'text/plain': 'text', 'text/html': 'html', 'text/markdown': 'markdown', 'image/svg+xml': 'svg', 'image/png': 'png',
    'image/jpeg': 'jpeg', 'application/pdf': 'pdf', 'text/latex': 'latex', 'application/json': 'json',
    'application/javascript': 'javascript',
}


def _as_text(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode('ascii')
    return value


def bundle_of(obj):
    """The formats an object offers, as Jupyter's display data (text always)."""
    try:
        data = {'text': repr(obj)}
    except Exception as e:
        data = {'text': '<repr failed: %r>' % (e,)}
    if isinstance(obj, type):
        return data
    for attr, key in REPR_METHODS:
        try:
            method = getattr(obj, attr, None)
            value = method() if callable(method) else None
        except Exception:
            continue
        if isinstance(value, tuple) and value:
            value = value[0]
        if value is not None:
            data[key] = _as_text(value)
    try:
        method = getattr(obj, '_repr_mimebundle_', None)
        mime = method() if callable(method) else None
        if isinstance(mime, tuple) and mime:
            mime = mime[0]
        for k, v in (mime or {}).items():
            if k in MIME_KEYS and v is not None:
                data[MIME_KEYS[k]] = _as_text(v)
    except Exception:
        pass
    return data


def send_result(obj, main):
    send({'id': _state['id'], 'type': 'result', 'is_main_result': main, **bundle_of(obj)})


def display(*objs, **_kwargs):
    """IPython's display(): each object as a result that is not the main one."""
    for obj in objs:
        send_result(obj, False)


namespace['display'] = display


# Cells' sources, handed to linecache (imported, like traceback, only when an error needs them:
# with tokenize and re they are a large part of a start under emulation), so tracebacks show code.
_cells = {}


def send_error(e):
    import linecache
    import traceback
    for filename, code in _cells.items():
        linecache.cache.setdefault(filename, (len(code), None, code.splitlines(True), filename))
    # The cell's frames and what they called; the driver's own frames (and a syntax error's
    # compile step) are not the user's business.
    frames = traceback.extract_tb(e.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename.startswith('<cell In[')), len(frames))
    frames = [f for f in frames[first:] if f.filename != DRIVER_FILE]
    head = ['Traceback (most recent call last):\n', *traceback.format_list(frames)] if frames else []
    text = ''.join(head + traceback.format_exception_only(type(e), e))
    send({'id': _state['id'], 'type': 'error', 'name': type(e).__name__, 'value': str(e), 'traceback': text})


def _run(code_obj):
    global _loop
    value = eval(code_obj, namespace)
    if code_obj.co_flags & CO_COROUTINE:
        if _loop is None:
            import asyncio
            _loop = asyncio.new_event_loop()
        value = _loop.run_until_complete(value)
    return value


def execute(code, n):
    filename = '<cell In[%d]>' % n
    _cells[filename] = code
    flags = _ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        # What ast.parse does, on the builtin module (the ast package costs its imports).
        tree = compile(code, filename, 'exec', flags | _ast.PyCF_ONLY_AST)
        last = None
        if tree.body and isinstance(tree.body[-1], _ast.Expr):
            last = _ast.Expression(tree.body.pop().value)
        body = compile(tree, filename, 'exec', flags)
        tail = compile(last, filename, 'eval', flags) if last is not None else None
    except SyntaxError as e:
        send_error(e)
        return
    try:
        _state['in_user_code'] = True
        _run(body)
        value = _run(tail) if tail is not None else None
        _state['in_user_code'] = False
    except BaseException as e:
        _state['in_user_code'] = False
        flush_output()
        send_error(e)
        return
    finally:
        _state['in_user_code'] = False
    flush_output()
    if value is not None:
        namespace['_'] = value
        send_result(value, True)


def run_one(cmd):
    global _count
    _count += 1
    env = {str(k): str(v) for k, v in (cmd.get('env_vars') or {}).items()}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    with _state_lock:
        _state['id'] = cmd.get('id')
    try:
        execute(str(cmd.get('code', '')), _count)
    finally:
        flush_output()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        send({'id': _state['id'], 'type': 'number_of_executions', 'execution_count': _count})
        send({'id': _state['id'], 'type': 'end_of_execution'})
        with _state_lock:
            _state['id'] = None


def main():
    cwd = sys.argv[1] if len(sys.argv) > 1 else ''
    sys.argv = ['']
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as e:
            send({'type': 'fatal', 'message': 'cannot use %s as the working directory: %s' % (cwd, e.strerror)})
            os._exit(2)
    sys.modules['__main__'] = main_module
    # Whole lines at a time (a print is one message), and a partial line at the latest when the
    # execution ends (flush_output); new streams, so PYTHONUNBUFFERED in the sandbox's env does not
    # split every print in two.
    sys.stdout = open(1, 'w', encoding='utf-8', errors='backslashreplace', buffering=1, closefd=False)
    sys.stderr = open(2, 'w', encoding='utf-8', errors='backslashreplace', buffering=1, closefd=False)
    signal.signal(signal.SIGINT, _on_sigint)
    threading.Thread(target=_pump, name='rds-output', daemon=True).start()
    threading.Thread(target=_read_commands, name='rds-commands', daemon=True).start()
    send({'type': 'ready'})
    while True:
        try:
            cmd = _commands.get()
            if cmd is None:
                break
            if cmd.get('type') == 'execute':
                run_one(cmd)
        except KeyboardInterrupt:
            continue
    os._exit(0)


main()
