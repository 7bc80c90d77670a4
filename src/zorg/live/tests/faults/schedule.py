"""A seed becomes a plan: the faults (what, when, for how long) and what
each client is like. The same seed, length, process and client counts
give the same plan; the run's interleaving may still differ (real
processes, real time), as with Jepsen.

    >>> plan = Plan(7, seconds=20, processes=2, clients=3)
    >>> plan.describe() == Plan(7, 20, 2, 3).describe()
    True
    >>> kinds = {fault.kind for fault in Plan(1, 600, 3, 4).faults}
    >>> sorted(kinds)
    ['live-kill', 'redis-hang', 'redis-kill', 'slow-broker']

A plan may draw from some kinds only:

    >>> {f.kind for f in Plan(1, 600, 3, 4, kinds=['slow-broker']).faults}
    {'slow-broker'}
"""

import random

# kind: (weight, shortest, longest duration in seconds)
FAULTS = {
    'slow-broker': (3, 0.05, 0.6),    # redis-server SIGSTOP, briefly
    'redis-hang': (2, 1.0, 4.0),      # SIGSTOP for longer, then SIGCONT
    'redis-kill': (1, 0.2, 2.0),      # SIGKILL, restarted empty after
    'live-kill': (2, 0.2, 2.0),       # SIGKILL of a live process, restart
}


class Fault:

    def __init__(self, at, kind, duration, target=None):
        self.at, self.kind = at, kind
        self.duration, self.target = duration, target

    def __repr__(self):
        target = '' if self.target is None else ' process %d' % self.target
        return '%6.2f s  %-11s %.2f s%s' % (self.at, self.kind,
                                            self.duration, target)


class ClientPlan:
    """What one client is like (its choices at run time come from its own
    random generator, seeded from the plan's seed and its name)."""

    def __init__(self, name, rng):
        self.name = name
        self.transport = rng.choice(['sse', 'longpoll', 'mixed'])
        self.pause = rng.uniform(0.05, 0.5)   # mean pause between posts
        self.slowCommit = rng.choice([0, 0.05, 0.15])   # probability
        self.dropInput = rng.choice([0, 0.05, 0.1])
        self.dropStream = rng.choice([0, 0.1, 0.3])
        self.closePage = rng.choice([0, 0.03, 0.08])
        self.streamFor = rng.uniform(0.5, 4.0)   # longest SSE connection

    def useSocket(self, rng):
        """Some clients hold a WebSocket (``@@live``) instead, and send
        their input over it (drawn apart, so that the other draws of a
        seed stay what they were)."""
        if rng.random() < 0.3:
            self.transport = 'ws'

    def __repr__(self):
        return ('%s: %s, pause %.2f s, slow commit %.0f%%, drop input '
                '%.0f%%, drop stream %.0f%%, close page %.0f%%' % (
                    self.name, self.transport, self.pause,
                    self.slowCommit * 100, self.dropInput * 100,
                    self.dropStream * 100, self.closePage * 100))


class Plan:

    def __init__(self, seed, seconds=20, processes=2, clients=4,
                 kinds=None):
        self.seed, self.seconds = seed, seconds
        self.kinds = sorted(kinds or FAULTS)
        unknown = set(self.kinds) - set(FAULTS)
        if unknown:
            raise ValueError('unknown faults %s: the kinds are %s'
                             % (', '.join(sorted(unknown)),
                                ', '.join(sorted(FAULTS))))
        self.processes, self.clientCount = processes, clients
        rng = random.Random('plan-%s' % seed)
        self.clients = [ClientPlan('c%d' % n, rng) for n in range(clients)]
        sockets = random.Random('sockets-%s' % seed)
        for client in self.clients:
            client.useSocket(sockets)
        self.faults = []
        kinds = self.kinds
        weights = [FAULTS[kind][0] for kind in kinds]
        at = rng.uniform(0.5, 2.0)
        while at < seconds - 1.0:
            kind = rng.choices(kinds, weights)[0]
            _, shortest, longest = FAULTS[kind]
            duration = round(rng.uniform(shortest, longest), 2)
            target = rng.randrange(processes) if kind == 'live-kill' \
                else None
            self.faults.append(Fault(round(at, 2), kind, duration, target))
            at += duration + rng.uniform(0.5, 3.0)

    def clientRandom(self, name):
        return random.Random('client-%s-%s' % (self.seed, name))

    def command(self):
        faults = ('' if self.kinds == sorted(FAULTS)
                  else ' --faults %s' % ','.join(self.kinds))
        return ('.venv/bin/python -m zorg.live.tests.faults --seed %s '
                '--length %s --processes %d --clients %d --schedules 1%s'
                % (self.seed, self.seconds, self.processes,
                   self.clientCount, faults))

    def describe(self):
        lines = ['schedule seed %s: %s s, %d live processes, %d clients'
                 % (self.seed, self.seconds, self.processes,
                    self.clientCount)]
        lines.extend('  %r' % client for client in self.clients)
        lines.extend('  %r' % fault for fault in self.faults)
        return '\n'.join(lines)
