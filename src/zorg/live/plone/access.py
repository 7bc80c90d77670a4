"""Who may view: Plone's own answer, asked as each viewer.

Everything the add-on tells a viewer (a change notice, who else is here, a
fragment, an editing notice) reaches them exactly when Plone would show
them the content. So the check is not a copy of Plone's rules: it is
Zope's security policy run as that user, in the content's context
(the user adopted as plone.api's ``adopt_user`` does, then
``checkPermission``), which counts what
Plone counts when it publishes the page: global roles, roles from groups,
local roles of the sharing tab (given directly, to a group, or
inherited), and the permissions of the workflow state.

When who may view changes while pages are open (a workflow transition,
the sharing tab, a user leaving a group), `revalidate` runs after the
commit: the pages of whoever lost View are told, closed, and hear nothing
more, presence included; whoever gained View can open the page and hears
from then on (the checks are made at each delivery, never remembered).
"""

from contextlib import contextmanager

import transaction
import zope.component
from AccessControl import getSecurityManager
from AccessControl.SecurityManagement import (
    newSecurityManager, setSecurityManager)
from AccessControl.SpecialUsers import nobody
from Acquisition import aq_inner
from zope.component.hooks import getSite, setSite

from zorg.live.interfaces import ILivePageManager
from zorg.live.core import audience
from zorg.live.core.events import Close, Update, safe
from zorg.live.zope6.model import findUser
from zorg.live.zope6.page import physicalGroup

VIEW = 'View'


@contextmanager
def adopted(user):
    """Zope's security as `user` (a user wrapped in its user folder, or
    nobody), for the block -- as plone.api's ``adopt_user`` does."""
    saved = getSecurityManager()
    newSecurityManager(None, user)
    try:
        yield
    finally:
        setSecurityManager(saved)


def mayView(obj, principal, permission=VIEW):
    """Whether the user with id `principal` (None: an anonymous visitor)
    may view `obj` now (or has another `permission` on it), as Plone
    decides it: the user is the one the user folder above `obj` knows
    (Plone's PAS: with their groups and roles), and the check is Zope's
    security policy run as them."""
    if principal is None:
        user = nobody
    else:
        user = findUser(obj, principal)
        if user is None:      # deleted meanwhile: nobody to show it to
            return False
    with adopted(user):
        return bool(getSecurityManager().checkPermission(
            permission, aq_inner(obj)))


def viewers(obj, group, manager):
    """``[audience]`` of the pages of `group` whose viewers may view
    `obj`: the principals online who may, and anonymous pages if
    anonymous visitors may."""
    allowed = [p for p in manager.whoIsOnline(group) if mayView(obj, p)]
    found = [audience.principals(allowed)] if allowed else []
    if mayView(obj, None):
        found.append(audience.anonymous())
    return found


def publishToViewers(event, obj, group=None, manager=None):
    """Publish `event` to the pages of `obj` whose viewers may view it."""
    manager = manager or zope.component.getUtility(ILivePageManager)
    group = group or physicalGroup(obj)
    for to in viewers(obj, group, manager):
        manager._publish(event, group, to)


def lostView(obj, group, manager):
    """``(principals, anonymous)``: who has a page of `group` open but may
    not view `obj` any more (anonymous: anonymous pages are open and
    anonymous visitors may not)."""
    lost = [p for p in manager.whoIsOnline(group) if not mayView(obj, p)]
    anonymous = any(c.anonymous and c.group_id == group for c in manager)
    return lost, anonymous and not mayView(obj, None)


def closePages(manager, group, to, notice):
    """Tell the pages of audience `to` in `group` that they may no longer
    view it, close them, and take them out of presence in this process
    (a page that keeps asking regardless hears no join or leave)."""
    manager._publish(Update(notice[0], safe(notice[1])), group, to)
    manager._publish(Close('forbidden'), group, to)
    for client in manager:
        if client.group_id == group and audience.accepts(to, client):
            client.presence = False


def revalidate(obj, notice, manager=None, below=True):
    """Close the pages of viewers of `obj` (and of what lies below it, whose
    local roles it may pass on) who may no longer view it. `notice` is
    ``(target, html)`` of what their pages are told first."""
    manager = manager or zope.component.getUtility(ILivePageManager)
    base = physicalGroup(obj)
    root = aq_inner(obj).getPhysicalRoot()
    for group in sorted(set(manager.groups()) | {base}):
        if group != base and not (below and group.startswith(base + '/')):
            continue
        target = obj if group == base else root.unrestrictedTraverse(
            group, None)
        if target is None:
            continue
        lost, anonymous = lostView(target, group, manager)
        if lost:
            closePages(manager, group, audience.principals(lost), notice)
        if anonymous:
            closePages(manager, group, audience.anonymous(), notice)


def afterCommit(function, *args):
    """Run `function(*args)` once the current transaction has committed
    (roles and states are only real then), in the site that is current
    now (a request may have left its site by the time it commits)."""
    site = getSite()

    def hook(committed):
        if not committed:
            return
        saved = getSite()
        setSite(site)
        try:
            function(*args)
        finally:
            setSite(saved)
    transaction.get().addAfterCommitHook(hook)
