"""The rule: no lock is held over broker I/O (DESIGN.md, promise 7).

A lock held while a call waits on Redis makes every thread that wants the
lock wait for Redis too: one hung broker call becomes everybody's (issue
19: ten inputs of four users answered after 18.7 s). So inside a ``with``
block over a lock or condition (``with self._lock:``, ``with
self._cond:``), no call may reach the broker's network: no call of a
broker, presence, page-record or input-record method on a broker-like
object, and in the Redis broker's modules no call on a Redis client or
script. This test reads the source (ast) and names each offence; the
behaviour is tested with Redis hung in test_exactness.py.
"""

import ast
import os

import zorg.live

ROOT = os.path.dirname(zorg.live.__file__)

# Methods of IBroker, IPresence, IPageRecords and IInputRecords that may
# wait on the network (the Redis broker's).
IO_METHODS = {
    'publish', 'publishMany', 'read', 'readStored', 'latest', 'bounds',
    'base', 'mark', 'finished', 'waitFor', 'join', 'leave', 'members',
    'isOnline', 'savePage', 'loadPage', 'refreshPages', 'dropPage',
    'claimInput', 'releaseInput', 'forgetInputs', 'recallInput',
    'rememberInput', 'save', 'load', 'refresh', 'drop'}
# Receivers that are a broker, or a part of one.
BROKERISH = ('broker', 'records', 'presence', 'pages', 'inputs')
# In the Redis broker's own modules: the clients and scripts.
REDIS_CALLS = ('_redis', '_reader', '_client', 'pipe', '_publish',
               '_latest', '_read(', '_mark', '_claim', '_release',
               '_remember', 'execute(', '_script')
# In-memory brokers: their calls never leave the process.
IN_MEMORY = {'broker/memory.py', 'broker/inputs.py', 'broker/presence.py'}


def isLock(node):
    text = ast.unparse(node).lower()
    return 'lock' in text or 'cond' in text


def offences(path, relative):
    with open(path) as f:
        source = f.read()
    tree = ast.parse(source)
    redisModule = relative.startswith('broker/redis')
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.With, ast.AsyncWith)):
            continue
        if not any(isLock(item.context_expr) for item in node.items):
            continue
        for inner in node.body:
            for call in ast.walk(inner):
                if not isinstance(call, ast.Call):
                    continue
                text = ast.unparse(call.func)
                if isinstance(call.func, ast.Attribute):
                    receiver = ast.unparse(call.func.value).lower()
                    if (call.func.attr in IO_METHODS and any(
                            word in receiver for word in BROKERISH)):
                        found.append('%s:%d %s' % (relative, call.lineno,
                                                   text))
                        continue
                if redisModule and any(name in text + '('
                                       for name in REDIS_CALLS):
                    found.append('%s:%d %s' % (relative, call.lineno, text))
    return found


def test_no_lock_is_held_over_broker_io():
    found = []
    for folder, _dirs, files in os.walk(ROOT):
        if os.sep + 'tests' in folder[len(ROOT):]:
            continue
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, ROOT).replace(os.sep, '/')
            if relative in IN_MEMORY:
                continue
            found += offences(path, relative)
    assert found == [], '\n'.join(found)


def test_the_rule_finds_a_lock_held_over_a_broker_call(tmp_path):
    """The checker itself: InputOnce as it was (issue 19) is found."""
    path = tmp_path / 'old.py'
    path.write_text('''
class InputOnce:
    def begin(self, uuid, inputId):
        with self._lock:
            answer = self.records.recallInput(uuid, inputId)
''')
    assert offences(str(path), 'page/old.py') == [
        'page/old.py:5 self.records.recallInput']
    path.write_text('''
class RedisBroker:
    def bad(self):
        with self._lock:
            self._redis.get('x')
''')
    assert offences(str(path), 'broker/redis.py') == [
        'broker/redis.py:5 self._redis.get']
