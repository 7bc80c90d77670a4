"""An input, checked once where it arrives.

An input (a page calling one of its handlers) reaches the server as a POST
body, a form, or a message on a shared connection. Whichever way it came,
it is checked once, at that edge, into an `Input`: its JSON decoded, its
size and its nesting measured against the settings. Every later step (the
exactly-once record, the page's handler call) trusts that value and checks
nothing again. Rules:

1. Size first: text longer than the limit is refused (TooLarge, 413)
   before anything else reads it.
2. Depth before decoding: JSON nesting deeper than the limit is refused
   (BadRequest) without parsing it (json.loads of deep nesting raises
   RecursionError, which would be a 500).
3. Then the JSON is decoded once; arguments are a list (positional) or an
   object (keywords); text arguments that do not start with ``[`` or
   ``{`` are the original comma-separated form.
4. An input id is 1 to 64 letters, digits, ``-`` or ``_``.

    >>> readInput('{"handler":"say","arguments":["hi"]}', 100, 3)
    Input(handler='say', args=('hi',), kwargs={})
    >>> readArguments('[[[[1]]]]', 100, 3)
    Traceback (most recent call last):
    zorg.live.interfaces.BadRequest: arguments nest deeper than 3 lists or objects (setting max-argument-depth)
"""

import json
import re
from dataclasses import dataclass, field

from zorg.live.interfaces import BadRequest, TooLarge

INPUT_ID = re.compile(r'[A-Za-z0-9_-]{1,64}\Z')


@dataclass(frozen=True)
class Input:
    """A checked input: the handler's name and its arguments, decoded."""

    handler: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


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


def checkDepth(text, limit):
    """BadRequest when JSON `text` nests deeper than `limit` (rule 2)."""
    # Cheap first: no text can nest deeper than its count of brackets.
    if text.count('[') + text.count('{') <= limit:
        return
    if jsonDepth(text) > limit:
        raise BadRequest('arguments nest deeper than %d lists or objects '
                         '(setting max-argument-depth)' % limit)


def checkSize(text, limit, message='handler arguments are larger than %d '
              'bytes'):
    """TooLarge when `text` (str or bytes) is more than `limit` bytes."""
    size = len(text) if isinstance(text, bytes) else len(
        text.encode('utf-8'))
    if size > limit:
        raise TooLarge(message % limit)


def checkInputId(value):
    """The input id `value`, or BadRequest saying what an id must be."""
    if not isinstance(value, str) or not INPUT_ID.match(value):
        raise BadRequest('an input id is 1 to 64 letters, digits, "-" or '
                         '"_"; got %r' % (value if not isinstance(value, str)
                                         else value[:70]))
    return value


def _split(arguments):
    if arguments is None:
        return (), {}
    if isinstance(arguments, dict):
        return (), arguments
    if isinstance(arguments, (list, tuple)):
        return tuple(arguments), {}
    raise BadRequest('arguments must be a list or an object')


def readArguments(text, limit, depth):
    """``(args, kwargs)`` of arguments given as text (a form field):
    JSON when it starts with ``[`` or ``{``, else comma-separated."""
    if text is None:
        return (), {}
    checkSize(text, limit)
    checkDepth(text, depth)
    text = text.strip()
    if text[:1] in ('[', '{'):
        try:
            return _split(json.loads(text))
        except ValueError as e:
            raise BadRequest('arguments are not valid JSON: %s' % e)
    return tuple(text.split(',')) if text else (), {}


def decodedInput(handler, arguments):
    """The Input of a message already decoded and measured as a whole (a
    shared connection's input message): only its shape is checked."""
    if isinstance(arguments, str):
        # The original form: text arguments inside a JSON message.
        args, kwargs = readArguments(arguments, len(arguments.encode(
            'utf-8')), arguments.count('[') + arguments.count('{'))
    else:
        args, kwargs = _split(arguments)
    return Input(handler, args, kwargs)


def readInput(body, limit, depth):
    """The Input of a JSON body ``{"handler": ..., "arguments": ...}``
    (str or bytes): rules 1 to 3, once."""
    checkSize(body, limit, 'the input body is larger than %d bytes')
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    checkDepth(body, depth)
    try:
        data = json.loads(body or '{}')
    except ValueError as e:
        raise BadRequest('the input body is not valid JSON: %s' % e)
    if not isinstance(data, dict) or 'handler' not in data:
        raise BadRequest('the input body must be an object with '
                         '"handler" and "arguments"')
    return decodedInput(data['handler'], data.get('arguments'))
