"""An input, checked once where it arrives.

An input (a page calling one of its handlers) reaches the server as a POST
body (JSON), a form (handler-name and arguments text), a message on a
shared connection, or a direct call from Python. Whichever way it came,
it is checked once, at that edge, into an `Input`: its JSON decoded, its
size and its nesting measured. Every later step (the exactly-once record,
the page's handler call) trusts that value and checks nothing again; a
page compares the measured `size` with its own limit. Rules:

1. Size first: a body longer than max-input-size is refused (TooLarge,
   413) before anything else reads it.
2. Depth before decoding: JSON nesting deeper than max-argument-depth is
   refused (BadRequest, 400) without parsing it (json.loads of deep
   nesting raises RecursionError, which would be a 500).
3. Then the JSON is decoded, once. Arguments are a list (positional) or an
   object (keywords); text arguments that do not start with ``[`` or
   ``{`` are the original comma-separated form.
4. An input's `size` is the bytes of its arguments as JSON text (as the
   text itself when they came as text), whichever way they came, so that
   a page's limit (maxArgumentsSize) means the same for all of them.
5. An input id is 1 to 64 letters, digits, ``-`` or ``_``.
6. An input remembers the nesting limit it was checked against
   (`depthLimit`). A page whose own limit (maxArgumentsDepth) is lower
   measures the decoded arguments (`nesting`): a shared connection checks
   with the setting, before it knows the page.

    >>> readBody(b'{"handler":"say","arguments":["hi"]}', 100, 3)
    Input(handler='say', args=('hi',), kwargs={}, size=6, depthLimit=3)
    >>> fromArguments('say', 'a,b', 3)
    Input(handler='say', args=('a', 'b'), kwargs={}, size=3, depthLimit=3)
    >>> nesting([[1], {'a': [[2]]}])
    4
    >>> fromArguments('say', '[[[[1]]]]', 3)
    Traceback (most recent call last):
    zorg.live.interfaces.BadRequest: arguments nest deeper than 3 lists or objects (setting max-argument-depth)
"""

import json
import re
from dataclasses import dataclass, field

from zorg.live.interfaces import BadRequest, TooLarge

INPUT_ID = re.compile(r'[A-Za-z0-9_-]{1,64}\Z')
# Where the server hands an input checked on a shared connection to the
# publisher's input step: a key of the request's ASGI scope, which only
# code in the server's process can fill (a browser cannot).
SCOPE_KEY = 'zorg.live.input'


@dataclass(frozen=True)
class Input:
    """A checked input: the handler's name as sent (a page looks it up
    among its declared handlers), its arguments decoded, and their size
    in bytes (rule 4)."""

    handler: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    size: int = 0
    depthLimit: int = 0


def jsonDepth(text):
    """The deepest nesting of lists and objects in JSON `text` (strings
    skipped), measured without parsing it."""
    depth = deepest = 0
    inString = escaped = False
    for char in text:
        if inString:
            if escaped:
                escaped = False
            elif char == '\\':
                escaped = True
            elif char == '"':
                inString = False
        elif char == '"':
            inString = True
        elif char in '[{':
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in ']}':
            depth -= 1
    return deepest


def nesting(value):
    """The deepest nesting of lists, tuples and dicts in decoded `value`
    (rule 6; its depth was bounded where it arrived)."""
    if isinstance(value, dict):
        value = list(value.values())
    elif not isinstance(value, (list, tuple)):
        return 0
    return 1 + max(map(nesting, value), default=0)


def checkDepth(text, limit):
    """BadRequest when JSON `text` nests deeper than `limit` (rule 2)."""
    # Cheap first: no text can nest deeper than its count of brackets.
    if text.count('[') + text.count('{') <= limit:
        return
    if jsonDepth(text) > limit:
        raise BadRequest('arguments nest deeper than %d lists or objects '
                         '(setting max-argument-depth)' % limit)


def checkInputId(value):
    """The input id `value`, or BadRequest saying what an id must be."""
    if not isinstance(value, str) or not INPUT_ID.match(value):
        raise BadRequest('an input id is 1 to 64 letters, digits, "-" or '
                         '"_"; got %r' % (value if not isinstance(value, str)
                                         else value[:70]))
    return value


def _split(arguments):
    if isinstance(arguments, dict):
        return (), arguments
    if isinstance(arguments, (list, tuple)):
        return tuple(arguments), {}
    raise BadRequest('arguments must be a list or an object')


def fromArguments(handler, arguments, depth, measured=False):
    """The Input of `handler` with `arguments` as given: None, text (a
    form's field, or text inside a JSON message: rules 2 and 3), or a
    decoded list or object. `measured`: that list or object was decoded
    from text whose depth was checked already (a JSON body, a shared
    connection's message), so it is not measured again."""
    if arguments is None:
        return Input(handler)
    if isinstance(arguments, str):
        # Text is its own JSON (a string inside the body): measured here.
        size = len(arguments.encode('utf-8'))
        checkDepth(arguments, depth)
        text = arguments.strip()
        if text[:1] in ('[', '{'):
            try:
                args, kwargs = _split(json.loads(text))
            except ValueError as e:
                raise BadRequest('arguments are not valid JSON: %s' % e)
        else:
            args, kwargs = tuple(text.split(',')) if text else (), {}
        return Input(handler, args, kwargs, size, depth)
    args, kwargs = _split(arguments)
    text = json.dumps(arguments, ensure_ascii=False, default=str)
    if not measured:
        checkDepth(text, depth)
    return Input(handler, args, kwargs, len(text.encode('utf-8')), depth)


def readBody(body, limit, depth):
    """The Input of a JSON body ``{"handler": ..., "arguments": ...}``
    (bytes): rules 1 to 3, once."""
    if len(body) > limit:
        raise TooLarge('the input body is larger than %d bytes' % limit)
    text = body.decode('utf-8', 'replace')
    checkDepth(text, depth)
    try:
        data = json.loads(text) if text else {}
    except ValueError as e:
        raise BadRequest('the input body is not valid JSON: %s' % e)
    if not isinstance(data, dict) or 'handler' not in data:
        raise BadRequest('the input body must be an object with '
                         '"handler" and "arguments"')
    return fromArguments(data['handler'], data.get('arguments'), depth,
                         measured=True)
