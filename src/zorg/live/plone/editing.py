"""Visible editing: "Ann Arbor is editing this page".

Opening the edit form takes Plone's lock on the content (plone.locking,
through plone.app.lockingbehavior's subscriber of IEditBegunEvent);
saving or cancelling releases it, and so do the lock operations
(``@@plone_lock_operations/safe_unlock``, ``force_unlock``: the *Unlock*
button, and the edit form's unload). After each of these commits, the
pages of the content are told who holds the lock now (or that nobody
does), each viewer who may view it (access.py) -- but not anonymous
visitors, who are not told members' names, and not the editor himself.

Whoever may edit the content too is also warned that the one who saves
last overwrites the other's changes; the viewlet shows the same when a
page is rendered, so a second editor is warned before starting (Plone
sends him from the edit form back to the page, with its lock message).
"""

from html import escape

import zope.component
from plone.locking.interfaces import ILockable
from zope.i18n import translate

from zorg.live.interfaces import ILivePageManager
from zorg.live.core import audience
from zorg.live.core.events import Update, safe
from zorg.live.plone import access
from zorg.live.plone.messages import _
from zorg.live.zope6.model import findUser
from zorg.live.zope6.page import physicalGroup, userInfo

TARGET = 'zorg-live-editing'
MODIFY = 'Modify portal content'


def editingState(obj):
    """``(user id, full name)`` of who holds the edit lock on `obj`, or
    None."""
    lockable = ILockable(obj, None)
    if lockable is None:
        return None
    info = lockable.lock_info()
    if not info:
        return None
    userid = info[0].get('creator')
    if not userid:
        return None
    user = findUser(obj, userid)
    name = userInfo(user)[1] if user is not None else userid
    return userid, name


def editingHTML(state, viewer, request, editor=False):
    """What `viewer` is shown of `state` (nothing about their own lock);
    an `editor` (who may modify it too) is warned as well."""
    if state is None or state[0] == viewer:
        return ''
    text = translate(_('editing', default='${name} is editing this page.',
                       mapping={'name': '\x00'}), context=request)
    before, _sep, after = escape(text).partition('\x00')
    html = '%s<b>%s</b>%s' % (before, escape(state[1]), after)
    if editor:
        html += ' ' + escape(translate(_(
            'editing_warning', default='If you edit it too, whoever saves '
            'last overwrites the other\'s changes.'), context=request))
    return '<p class="zorg-live-editor alert alert-warning">%s</p>' % html


def mayModify(obj, principal):
    return access.mayView(obj, principal, MODIFY)


def publishEditing(obj, request):
    """Tell the pages of `obj` who is editing it now."""
    manager = zope.component.getUtility(ILivePageManager)
    group = physicalGroup(obj)
    state = editingState(obj)
    holder = state[0] if state else None
    for to in access.viewers(obj, group, manager):
        if to['to'] != 'principals':
            continue       # anonymous visitors are not told names
        others = [p for p in to['ids'] if p != holder]
        editors = [p for p in others if mayModify(obj, p)]
        for ids, editor in ((editors, True),
                            ([p for p in others if p not in editors], False)):
            if ids:
                manager._publish(Update(TARGET, safe(editingHTML(
                    state, None, request, editor))), group,
                    audience.principals(ids))
        if holder in to['ids']:
            manager._publish(Update(TARGET, safe('')), group,
                             audience.principals([holder]))


def editChanged(obj, event):
    """IEditBegunEvent, IEditFinishedEvent, IEditCancelledEvent."""
    from zorg.live.plone.notice import installed
    from zorg.live.plone.settings import settings
    request = installed()
    current = settings()
    if request is None or current is None or not current.show_editing:
        return
    access.afterCommit(publishEditing, obj, request)


def lockViews():
    """The views that take or release locks: plone.locking's operations
    (Classic UI: unlock, lock, refresh) and plone.restapi's ``@lock``
    (Volto locks a page while it is edited, and unlocks it after)."""
    from plone.locking.browser.locking import LockingOperations
    views = [LockingOperations]
    try:
        from plone.restapi.services.locking import add, delete
        views += [add.Lock, delete.Lock]
    except ImportError:
        pass
    return tuple(views)


def lockOperation(event):
    """ZPublisher's IPubBeforeCommit: a request published a view that
    takes or releases a lock on some content."""
    request = event.request
    published = request.get('PUBLISHED', None)
    view = getattr(published, '__self__', published)
    if not isinstance(view, lockViews()):
        return
    editChanged(view.context, event)
