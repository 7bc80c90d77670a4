"""Publishing is transactional: an event published in a transaction goes
out when it commits, never when it aborts, and a broker that cannot take
it fails the commit, so nothing is stored (page/transactional.py).

The unit tests use a real ZODB (in memory); the server tests a real
redis-server that is killed (SIGKILL) or hung (SIGSTOP) while a chat
runs, and count: every message is either stored and shown exactly once,
or refused with 503 and stored nowhere.
"""

import asyncio
import time

import pytest
import transaction
import ZODB
from ZODB.POSException import ConflictError

from zorg.live.broker.memory import MemoryBroker
from zorg.live.interfaces import BrokerUnavailable
from zorg.live.core.events import Append
from zorg.live.page.manager import LivePageManager
from zorg.live.page.transactional import (
    PublishingDataManager, publishOnCommit)
from zorg.live.tests import chatcheck
from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_servers import session


class Failing(MemoryBroker):
    def publishMany(self, items, inputs=(), inFlight=None):
        raise BrokerUnavailable('the broker is away')


@pytest.fixture
def db():
    database = ZODB.DB(None)
    yield database
    transaction.abort()
    database.close()


def stored(database):
    with database.transaction() as connection:
        return list(connection.root().get('lines', ()))


def store(database, text, manager, group='g'):
    connection = database.open()
    try:
        root = connection.root()
        root['lines'] = list(root.get('lines', ())) + [text]
        publishOnCommit(Append('log', text), group, manager)
        transaction.commit()
    finally:
        connection.close()


def texts(manager, after, group='g'):
    entries, _ = manager.broker.read(group, after, 100)
    return [text for _p, text, _a in entries]


def test_published_when_it_commits(db):
    manager = LivePageManager()
    start = manager.broker.latest('g')
    store(db, 'one', manager)
    assert len(texts(manager, start)) == 1
    assert stored(db) == ['one']


def test_nothing_published_when_it_aborts(db):
    manager = LivePageManager()
    start = manager.broker.latest('g')
    connection = db.open()
    connection.root()['lines'] = ['never']
    publishOnCommit(Append('log', 'never'), 'g', manager)
    transaction.abort()
    connection.close()
    assert texts(manager, start) == []
    # The next transaction does not carry it either.
    store(db, 'next', manager)
    assert ['next' in t for t in texts(manager, start)] == [True]


def test_a_broker_that_cannot_take_it_fails_the_commit_and_nothing_is_stored(
        db):
    manager = LivePageManager(Failing())
    with pytest.raises(BrokerUnavailable):
        store(db, 'lost?', manager)
    transaction.abort()
    assert stored(db) == []


def test_all_events_of_a_transaction_go_out_together_in_order(db):
    manager = LivePageManager()
    start = manager.broker.latest('g')
    connection = db.open()
    connection.root()['lines'] = ['a', 'b']
    for text in ('a', 'b', 'c'):
        publishOnCommit(Append('log', text), 'g', manager)
    transaction.commit()
    connection.close()
    assert ['"html":"%s"' % t in text for t, text in
            zip('abc', texts(manager, start))] == [True] * 3


def test_a_conflict_publishes_nothing(db):
    # The database votes first and fails (a conflict): the publishing
    # data manager, which votes last, never publishes.
    manager = LivePageManager()
    start = manager.broker.latest('g')
    tm = transaction.TransactionManager()
    late = db.open(transaction_manager=tm)
    late.root()['x'] = 'late'       # the root as it was before `first`
    dm = PublishingDataManager(manager)
    dm.add(Append('log', 'conflicting'), 'g', None)
    tm.get().join(dm)
    store(db, 'first', manager)     # another transaction changes the root
    with pytest.raises(ConflictError):
        tm.commit()
    tm.abort()
    late.close()
    assert ['"first"' in t for t in texts(manager, start)] == [True]


# -- a chat on Redis while Redis fails -----------------------------------------

# A page of the chat as livepage.js keeps it: keyed appends are added once,
# a reload replaces everything with a fresh render.
Reader = chatcheck.Page


async def chat(server, fault, heal):
    async with session() as s:
        reader = Reader(s, server)
        stop = asyncio.Event()
        reading = asyncio.ensure_future(reader.run(stop))
        while not getattr(reader, 'uuid', None):
            await asyncio.sleep(0.05)
        answers = {}
        for n in range(24):
            if n == 8:
                fault()
            if n == 16:
                heal()
                # Recovery: wait until the server says delivery works.
                deadline = time.monotonic() + 60
                while True:
                    async with s.get(server.url('@@live-health')) as r:
                        if r.status == 200:
                            break
                    assert time.monotonic() < deadline, 'no recovery'
                    await asyncio.sleep(0.2)
            text = 'm%d' % n
            url = server.url('@@snapshot.html/@@client/%s/input'
                             % reader.uuid)
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with s.post(url, json={'handler': 'say',
                                                 'arguments': [text]}) as r:
                        answers[text] = r.status
                except asyncio.TimeoutError:
                    answers[text] = 'timeout'
                # After recovery a client retries what was refused (as
                # livepage.js does after Retry-After).
                if (n < 16 or answers[text] != 503
                        or time.monotonic() > deadline):
                    break
                await asyncio.sleep(0.2)
        accepted = [t for t, status in answers.items() if status == 200]
        refused = [t for t, status in answers.items() if status == 503]
        # A request the client gave up on has an unknown outcome; every
        # other answer is 200 or 503.
        unknown = [t for t, status in answers.items() if status == 'timeout']
        assert len(accepted) + len(refused) + len(unknown) == len(answers), (
            answers)
        assert refused, 'the broker failure refused nothing: %s' % answers
        assert all(answers['m%d' % n] == 200 for n in range(8))
        assert all(answers["m%d" % n] == 200 for n in range(17, 24)), sorted(
            answers.items(), key=lambda item: int(item[0][1:]))
        deadline = time.monotonic() + 60
        while [t for t in reader.lines if t in accepted] != accepted:
            assert time.monotonic() < deadline, (reader.lines, answers)
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(reading, 60)
        # What is stored is what was accepted (and maybe what the client
        # gave up on), in order, nothing refused; the page shows each
        # stored line once.
        fresh = Reader(s, server)
        await fresh.render()
        assert [t for t in fresh.lines if t not in unknown] == accepted
        assert not set(fresh.lines) & set(refused)
        assert reader.lines == fresh.lines


@pytest.mark.redis
def test_redis_killed_and_restarted_while_a_chat_runs(servers, redisServer):
    server = servers('a', refresh_interval=1)
    asyncio.run(chat(server, redisServer.stop,
                     redisServer.start))


@pytest.mark.redis
def test_redis_hung_while_a_chat_runs(servers, redisServer):
    server = servers('a', refresh_interval=1)
    asyncio.run(chat(server, redisServer.hang,
                     redisServer.resume))


@pytest.mark.redis
def test_while_redis_is_down_pages_and_notify_answer_503_and_store_nothing(
        tmp_path, redisServer):
    from zorg.live.tests.test_demo import ADMIN, demoServer

    async def notify(s, server, text):
        async with s.post(server.url('@@notify'), json={
                'group': '/lobby', 'text': text}, headers=ADMIN) as r:
            return r.status, await r.json()

    async def lobby(s, server):
        async with s.get(server.url('lobby'), headers=ADMIN) as r:
            return r.status, await r.text()

    async def run(server):
        async with session() as s:
            assert (await notify(s, server, 'before'))[0] == 200
            redisServer.stop()
            status, body = await notify(s, server, 'during')
            assert status == 503 and body['error'] == 'broker-unavailable'
            status, _html = await lobby(s, server)
            assert status == 503
            redisServer.start()
            deadline = time.monotonic() + 30
            while (await notify(s, server, 'after'))[0] != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            status, html = await lobby(s, server)
            assert status == 200
            assert 'before' in html and 'after' in html
            assert 'during' not in html

    with demoServer(tmp_path / 'demo', broker=redisServer.url) as server:
        asyncio.run(run(server))
