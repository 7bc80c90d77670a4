"""@@live-status (managers): open pages, groups, who is online, events,
transports, and a chart of the last minute.

A sampler thread (started by the first status page) reads the manager once
a second and keeps the last minute of samples. While a status page is
open it publishes each sample to the status group as a custom event
``live-stats`` (the page's script draws the chart from them) and the table
as an ``update`` when it changed. It publishes from its own thread, as a
worker thread would; a site with nobody watching publishes nothing.
"""

import collections
import json
import logging
import threading
import time
from html import escape

import zope.component
from zope.browserpage.viewpagetemplatefile import ViewPageTemplateFile

from zorg.live.demo.browser import DemoMixin
from zorg.live.interfaces import ILivePageManager
from zorg.live.core.events import Custom, Update, safe
from zorg.live.page.page import LivePage, handler
from zorg.live.page.presenceview import principalTitle

GROUP = '@@live-status'
log = logging.getLogger('zorg.live.demo')


def stats(manager, own=0):
    """The manager's numbers; `own` events (the sampler's) are left out."""
    clients = list(manager)
    transports = {}
    for client in clients:
        name = getattr(client, 'transport', None) or 'not connected yet'
        transports[name] = transports.get(name, 0) + 1
    groups = []
    for group in manager.groups():
        pages = [c for c in clients if c.group_id == group]
        groups.append({'group': group, 'pages': len(pages),
                       'online': [principalTitle(p, manager, group)
                                  for p in manager.whoIsOnline(group)]})
    return {'pages': len(clients), 'waiting': manager.waiting,
            'peakWaiting': manager.peakWaiting,
            'published': manager.published - own, 'groups': groups,
            'transports': transports}


def statsHTML(s):
    rows = ''.join(
        '<tr><td>%s</td><td>%d</td><td>%s</td></tr>'
        % (escape(g['group']), g['pages'],
           escape(', '.join(g['online']) or '-'))
        for g in s['groups'])
    transports = ', '.join('%s: %d' % (escape(k), v)
                           for k, v in sorted(s['transports'].items()))
    return ('<p>%d open pages, %d waiting now (peak %d), %d events '
            'published; transports: %s</p>'
            '<table><tr><th>group</th><th>pages</th><th>online</th></tr>'
            '%s</table>' % (s['pages'], s['waiting'], s['peakWaiting'],
                            s['published'], transports or '-', rows))


class Sampler:
    """Samples the manager every `interval` seconds; one per process."""

    interval = 1.0
    keep = 60   # samples: the chart's minute

    def __init__(self, manager):
        self.manager = manager
        self.samples = collections.deque(maxlen=self.keep)
        self.own = 0          # events the sampler published itself
        self.lastHTML = None
        self.previous = None  # (time, published) of the last sample
        self.sampling = threading.Lock()  # the thread and `refresh`

    def sample(self):
        """Take one sample; publish it when a status page is open."""
        with self.sampling:
            return self._sample()

    def _sample(self):
        s = stats(self.manager, self.own)
        now = time.time()
        rate = 0.0
        if self.previous is not None and now > self.previous[0]:
            rate = max(0.0, (s['published'] - self.previous[1])
                       / (now - self.previous[0]))
        self.previous = (now, s['published'])
        point = {'t': now, 'events': round(rate, 2), 'pages': s['pages'],
                 'waiting': s['waiting']}
        self.samples.append(point)
        if GROUP in self.manager.groups():
            html = statsHTML(s)
            if html != self.lastHTML:
                self.lastHTML = html
                self.publish(Update('stats', safe(html)))
            self.publish(Custom('live-stats', point))
        return point

    def publish(self, event):
        self.own += 1
        self.manager.publish(event, GROUP)

    def run(self):
        while Sampler._running is self:   # a new manager replaces it
            time.sleep(self.interval)
            try:
                self.sample()
            except Exception:   # a broker hiccup must not end the chart
                log.exception('live-status sample failed')

    _lock = threading.Lock()
    _running = None

    @classmethod
    def running(cls, manager):
        """The process's sampler, started on first use."""
        with cls._lock:
            if cls._running is None or cls._running.manager is not manager:
                sampler = cls._running = cls(manager)
                sampler.sample()
                threading.Thread(target=sampler.run, daemon=True,
                                 name='zorg.live.demo status sampler').start()
            return cls._running


class StatusPage(DemoMixin, LivePage):
    """@@live-status: the table and the chart, kept live by the sampler."""

    template = ViewPageTemplateFile('status.pt')

    def getGroupId(self):
        return GROUP

    @property
    def sampler(self):
        return Sampler.running(
            zope.component.getUtility(ILivePageManager))

    def statsHTML(self):
        return statsHTML(stats(self.manager, self.sampler.own))

    def historyJSON(self):
        """The samples so far, for the chart's first drawing (JSON that
        is safe inside <script>)."""
        return json.dumps(list(self.sampler.samples)).replace('</', '<\\/')

    @handler
    def refresh(self):
        """Publish the table and a sample now (every status page gets
        them), instead of at the next tick."""
        self.sampler.lastHTML = None
        self.sampler.sample()
        return None
