"""The shape of the package: a core that is visibly pure, no import circles.

The core (zorg.live.core) holds the rules without I/O; these tests fail
when it starts to lean on the publisher, threads, a broker or a clock of
its own, or when two modules of zorg.live come to import each other.
"""

import ast
import os
import subprocess
import sys

import zorg.live

SRC = os.path.dirname(os.path.dirname(os.path.dirname(zorg.live.__file__)))
PACKAGE = os.path.dirname(zorg.live.__file__)
CORE = os.path.join(PACKAGE, 'core')
# What the core may not import: the publisher, threads, the brokers (and
# what they stand on), the drivers and the Zope glue, and a clock.
FORBIDDEN = ('zope.publisher', 'threading', 'asyncio', 'time', 'redis',
             'zorg.live.broker', 'zorg.live.server', 'zorg.live.page')


def moduleNames(folder, prefix):
    for name in sorted(os.listdir(folder)):
        if name.endswith('.py') and name != '__init__.py':
            yield prefix + '.' + name[:-3]


def test_core_imports_without_publisher_threads_or_brokers():
    blocked = ('zope.publisher', 'threading', 'redis', 'zorg.live.broker',
               'zorg.live.server', 'zorg.live.page')
    names = list(moduleNames(CORE, 'zorg.live.core'))
    script = (
        'import sys\n'
        'for name in %r:\n'
        '    sys.modules[name] = None   # import of it raises ImportError\n'
        'import importlib\n'
        'for name in %r:\n'
        '    importlib.import_module(name)\n'
        'for name in %r:\n'
        '    del sys.modules[name]\n'
        'print("imported", len(%r))\n' % (blocked, names, blocked, names))
    done = subprocess.run([sys.executable, '-c', script], cwd=SRC,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'imported %d' % len(names)
    assert len(names) >= 6     # delivery, wire, events, audience, ...


def imports(path, toplevel=False):
    """The module names that the module at `path` imports (absolute)."""
    tree = ast.parse(open(path, encoding='utf-8').read())
    for node in (tree.body if toplevel else ast.walk(tree)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def test_core_imports_nothing_forbidden_anywhere():
    """Also in functions (which the subprocess test above does not run)."""
    for name in moduleNames(CORE, 'zorg.live.core'):
        path = os.path.join(CORE, name.rsplit('.', 1)[1] + '.py')
        for module, _names in imports(path):
            assert not any(module == f or module.startswith(f + '.')
                           for f in FORBIDDEN), (name, module)


def allModules():
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in ('tests', '__pycache__')]
        for file in files:
            if file.endswith('.py'):
                path = os.path.join(folder, file)
                name = os.path.relpath(path, SRC)[:-3].replace(os.sep, '.')
                if name.endswith('.__init__'):
                    name = name[:-len('.__init__')]
                yield name, path


def importGraph():
    """{module: modules of zorg.live it imports, at the top or in a
    function} (an import in a function that closes a circle is a circle
    too: it only hides it)."""
    paths = dict(allModules())
    graph = {}
    for name, path in paths.items():
        found = graph[name] = set()
        for module, names in imports(path):
            if not module.startswith('zorg.live'):
                continue
            targets = [module + '.' + n for n in names
                       if module + '.' + n in paths] or [module]
            found.update(t for t in targets if t in paths and t != name)
    return graph


def circles(graph):
    """The strongly connected parts of more than one module (Tarjan)."""
    index, low, stack, onStack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        onStack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in onStack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = []
            while True:
                other = stack.pop()
                onStack.discard(other)
                part.append(other)
                if other == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circles_are_found():
    assert circles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [['a', 'b']]


def test_no_import_circles_among_zorg_live_modules():
    graph = importGraph()
    assert 'zorg.live.core.delivery' in graph['zorg.live.server.asgi'] or \
        any('zorg.live.core' in m for m in graph['zorg.live.server.asgi'])
    assert circles(graph) == []
