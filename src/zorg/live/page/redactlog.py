"""No log line holds a page id or a connection ticket in full.

A page id is a capability (whoever has it reads the page's events and
sends its input), and so, for its short life, is a connection ticket;
and the publisher logs the URL of a request whose view
failed, which for the protocol's steps holds the page id. `install()`
puts a log-record factory in front of the standard one that shortens every
page id in a protocol URL (``/@@client/<id>/``) and in an
``X-Live-Progress`` header -- in the message, its arguments and the
traceback text -- to the form of `client.redact`. It is installed once per
process, by the servers (page/guard.py), whatever handlers the site's
logging configuration has.

    >>> redactText('GET /chat/@@client/Zk3jq0vX8Yb2L1mNn0pQrA/input failed')
    'GET /chat/@@client/Zk3j.../input failed'
    >>> redactText('X-Live-Progress: Zk3jq0vX8Yb2L1mNn0pQrA bar')
    'X-Live-Progress: Zk3j... bar'

and a connection ticket (core/ticket.py) to its format and expiry:

    >>> redactText('GET /@@live?ticket=1.1700000060.YWxpY2U.c2lnbmF0dXJl')
    'GET /@@live?ticket=1.1700000060.YWxp...'
"""

import logging
import re
import threading

from zorg.live.page.client import redact
from zorg.live.core.ticket import redact as redactTicket

PAGE_ID = re.compile(
    r'(@@client/|%40%40client/|x-live-progress["\']?[:=,]?\s*["\']?)'
    r'([A-Za-z0-9_-]{5,64})', re.IGNORECASE)

_lock = threading.Lock()
_installed = []


# A connection ticket in a URL (the WebSocket's, the shared stream's).
TICKET = re.compile(r'(ticket=)([A-Za-z0-9._%-]{5,})', re.IGNORECASE)


def redactText(text):
    text = TICKET.sub(lambda m: m.group(1) + redactTicket(m.group(2)), text)
    return PAGE_ID.sub(lambda m: m.group(1) + redact(m.group(2)), text)


def _redactRecord(record):
    try:
        message = record.getMessage()
    except Exception:
        return record   # a broken record is logging's own business
    record.msg, record.args = redactText(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redactText(
            logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redactText(record.exc_text)
    return record


def install():
    """Redact page ids in every log record of this process (once)."""
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            return _redactRecord(previous(*args, **kwargs))
        logging.setLogRecordFactory(factory)
        _installed.append(factory)
