#!/usr/bin/env python3
"""Renders per model-driven update: 1,000 viewers of one object in 1, 3 and
100 security contexts (principals), plus anonymous visitors.

    python benchmarks/renders.py [--viewers N] [--out FILE]

A ``<live:update>`` renders its fragment once per principal online in the
group and once for the anonymous pages (zorg.live.page.model), never once
per page. This counts the renders of one update, and times it, with the
real principal registry and the in-memory broker, in one process. Renders
are counted by the fragment view itself; the time is the update's whole
cost in the thread that changed the object (all renders and publishes).
"""
import argparse
import os
import sys
import time

import zope.component
from zope.authentication.interfaces import (
    IAuthentication, IUnauthenticatedPrincipal)
from zope.principalregistry.principalregistry import (
    PrincipalRegistry, UnauthenticatedPrincipal)

from zorg.live import testing
from zorg.live.interfaces import ILivePageManager
from zorg.live.page.client import LivePageClient
from zorg.live.page.manager import LivePageManager
from zorg.live.page.model import ModelUpdate

RENDERS = [0]


class Fragment:
    def __init__(self, context, request):
        self.request = request

    def __call__(self):
        RENDERS[0] += 1
        return '<b>%s</b>' % self.request.principal.id


class Thing:
    pass


def measure(viewers, contexts):
    testing.setUp()
    try:
        registry = PrincipalRegistry()
        for n in range(contexts):
            registry.definePrincipal('p%d' % n, 'P%d' % n, login='p%d' % n)
        zope.component.provideUtility(registry, IAuthentication)
        zope.component.provideUtility(
            UnauthenticatedPrincipal('anon', 'Anonymous', ''),
            IUnauthenticatedPrincipal)
        zope.component.provideAdapter(
            Fragment, (Thing, zope.interface.Interface),
            zope.interface.Interface, name='fragment')
        manager = LivePageManager()
        manager.maxPagesPerPrincipal = viewers
        zope.component.provideUtility(manager, ILivePageManager)
        for n in range(viewers):
            # One page in ten is an anonymous visitor's.
            anonymous = n % 10 == 9
            manager.register(LivePageClient(
                'page%d' % n, 'zope.anybody' if anonymous
                else 'p%d' % (n % contexts), 'thing', anonymous=anonymous))
        update = ModelUpdate('fragment', 'target', group=lambda obj: 'thing')
        RENDERS[0] = 0
        start = time.perf_counter()
        update(Thing(), None)
        elapsed = time.perf_counter() - start
        return RENDERS[0], elapsed
    finally:
        testing.tearDown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--viewers', type=int, default=1000)
    parser.add_argument('--out', default=os.path.join(
        os.path.dirname(__file__), 'results', 'renders.md'))
    args = parser.parse_args()
    rows = []
    measure(args.viewers, 3)     # warm-up: imports, first template loads
    for contexts in (1, 3, 100):
        renders, elapsed = measure(args.viewers, contexts)
        rows.append((contexts, renders, elapsed))
        print('%d viewers, %d principals: %d renders, %.1f ms'
              % (args.viewers, contexts, renders, elapsed * 1000))
    with open(args.out, 'w') as f:
        f.write('# Renders per model-driven update\n\n'
                '`python benchmarks/renders.py`: one `<live:update>` of an '
                'object shown on %d pages (one in ten anonymous), the '
                'others spread over N principals (with 100, ten of them '
                'have no page: 90 are online); the real principal '
                'registry, the in-memory broker, one process.\n\n'
                '| principals (security contexts) | pages | renders per '
                'update | renders per page | ms per update |\n'
                '|---|---|---|---|---|\n' % args.viewers)
        for contexts, renders, elapsed in rows:
            f.write('| %d (+ anonymous) | %d | %d | %.3f | %.1f |\n'
                    % (contexts, args.viewers, renders,
                       renders / args.viewers, elapsed * 1000))
    print('wrote', args.out)


if __name__ == '__main__':
    sys.exit(main())
