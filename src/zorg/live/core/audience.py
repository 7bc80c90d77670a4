"""Who among a group's pages receives a published event.

An audience is stored with the event in the group log, so it is a plain
JSON-able dict (a broker may keep it outside this process): None means
every page of the group.
"""


def principals(ids):
    """The pages of these principals."""
    return {'to': 'principals', 'ids': sorted(set(ids))}


def client(uuid):
    """One page."""
    return {'to': 'client', 'uuid': uuid}


def others(uuid):
    """Every page but one (the sender's)."""
    return {'to': 'others', 'uuid': uuid}


def presence():
    """The pages that asked for join/leave events."""
    return {'to': 'presence'}


def anonymous():
    """The pages of visitors who did not log in."""
    return {'to': 'anonymous'}


def accepts(audience, page_client):
    """True when `page_client` is meant to receive an event for `audience`."""
    if audience is None:
        return True
    to = audience['to']
    if to == 'client':
        return page_client.uuid == audience['uuid']
    if to == 'others':
        return page_client.uuid != audience['uuid']
    if to == 'principals':
        return page_client.principal in audience['ids']
    if to == 'presence':
        return page_client.presence
    if to == 'anonymous':
        return bool(page_client.anonymous)
    raise ValueError('unknown audience %r' % (to,))
