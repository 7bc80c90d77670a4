"""Every byte of the protocol is made in core/wire.py.

An ast walk of every module of zorg.live (not the tests, the demo or the
example sites, which play the browser or a site of their own) over its
str and bytes constants: SSE framing, chunk and HTTP framing, the JSON
answers' openings, the headers zorg.live sends. One found outside wire.py
fails the test with its place, so that a fast path or a view cannot grow
its own copy of the protocol.
"""

import ast
import os
import re

import zorg.live

PACKAGE = os.path.dirname(zorg.live.__file__)
WIRE = os.path.join(PACKAGE, 'core', 'wire.py')
SKIP_DIRS = ('tests', 'demo', 'example', '__pycache__')
SKIP_FILES = ('testing.py',)
# Anywhere in a constant: framing and the openings of JSON answers.
FRAMING = re.compile(
    r'(^|\n)data: |(^|\n)id: |(^|\n)retry: |: heartbeat|text/event-stream'
    r'|\r\n|HTTP/1\.|^\{"(events|outputNum|type|error)"|no-cache|no-store'
    r'|x-accel-buffering', re.IGNORECASE)
# A whole constant that is a header value we send (compared to a request's
# header it is reading, not writing: allowed).
VALUES = {'application/json', '{}'}
# ASGI header tuples of an answer: (b'name', value).
HEADERS = {b'content-type', b'cache-control', b'allow', b'retry-after',
           b'content-length', b'x-accel-buffering'}
# Headers of a publisher's answer that only the protocol sets (a view's
# own Content-Type, e.g. text/plain, is its business).
SET_HEADERS = {'Allow', 'Retry-After', 'Cache-Control'}


def modules():
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(folder, name)
            if (name.endswith('.py') and name not in SKIP_FILES
                    and path != WIRE):
                yield path


def docstrings(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(
                    first.value, ast.Constant):
                found.add(id(first.value))
    return found


def protocolBytes(source):
    """``(line, constant)`` of what looks like protocol in `source`."""
    tree = ast.parse(source)
    docs = docstrings(tree)
    compared = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in [node.left] + node.comparators:
                for inner in ast.walk(part):
                    compared.add(id(inner))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(
                node.value, (str, bytes)) and id(node) not in docs:
            text = (node.value.decode('latin-1')
                    if isinstance(node.value, bytes) else node.value)
            if FRAMING.search(text) or (text in VALUES
                                        and id(node) not in compared):
                yield node.lineno, node.value
        elif (isinstance(node, ast.Tuple) and len(node.elts) == 2
              and isinstance(node.elts[0], ast.Constant)
              and node.elts[0].value in HEADERS):
            yield node.lineno, node.elts[0].value
        elif (isinstance(node, ast.Call)
              and isinstance(node.func, ast.Attribute)
              and node.func.attr == 'setHeader' and node.args
              and isinstance(node.args[0], ast.Constant)
              and node.args[0].value in SET_HEADERS):
            yield node.lineno, 'setHeader(%r, ...)' % node.args[0].value


def test_the_scan_finds_protocol_bytes():
    source = ('x = b"data: %s\\n\\n"\n'
              'y = b"%x\\r\\n%s\\r\\n"\n'
              'z = \'{"events":[]}\'\n'
              'h = [(b"content-type", b"text/plain")]\n'
              'response.setHeader("Allow", v)\n'
              'response.setHeader("Content-Type", "text/plain")\n'
              'j = "application/json"\n'
              'ok = ctype == "application/json"\n'
              'def f():\n'
              '    """data: in a docstring is prose"""\n')
    assert sorted(line for line, _ in protocolBytes(source)) == [
        1, 2, 3, 4, 5, 7]


def test_no_protocol_bytes_outside_wire():
    found = []
    for path in modules():
        with open(path, encoding='utf-8') as f:
            for line, value in protocolBytes(f.read()):
                found.append('%s:%d: %r' % (
                    os.path.relpath(path, PACKAGE), line, value))
    assert found == []
