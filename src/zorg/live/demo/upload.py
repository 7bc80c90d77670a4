"""Upload progress: ``/uploads`` shows a form and a progress bar.

The page posts the file with fetch and the header ``X-Live-Progress: <page
id> upload-progress``; the live server publishes ``progress`` events to the
page while the body comes in (zorg/live/server/progress.py) and streams it
on to ``@@upload`` in a worker thread, which records the file's name, size
and SHA-256 (not its bytes) and appends it to the list on every open page.
"""

import hashlib
import json
import posixpath
import time
from html import escape

from zope.browserpage.viewpagetemplatefile import ViewPageTemplateFile
from zope.publisher.browser import BrowserView
from zope.security import checkPermission
from zope.security.proxy import removeSecurityProxy
from zope.traversing.api import getPath

from zorg.live.demo.browser import DemoMixin
from zorg.live.interfaces import BadRequest, LiveError, TooLarge
from zorg.live.core.events import Prepend, safe
from zorg.live.page.model import publishOnCommit
from zorg.live.page.page import LivePage

MAX_UPLOAD = 20 << 20   # bytes of one file (instance.conf's max-body-size
SLACK = 64 << 10        # refuses larger bodies before they are read)
CHUNK = 1 << 16


def sizeText(size):
    if size >= 1 << 20:
        return '%.1f MB' % (size / float(1 << 20))
    return '%.1f KB' % (size / 1024.0)


def uploadHTML(record):
    """One list item; the file name is the uploader's text: escaped."""
    when = time.strftime('%H:%M', time.localtime(record['time']))
    return ('<li class="upload"><span class="time">%s</span> '
            '<b class="name">%s</b> <span class="size">%s</span> by '
            '<span class="nick">%s</span> <code class="sha">%s</code></li>'
            % (when, escape(record['name']), sizeText(record['size']),
               escape(record['nickname']), escape(record['sha256'][:16])))


class UploadPage(DemoMixin, LivePage):
    """upload.html: the form, the progress bar and the last uploads."""

    template = ViewPageTemplateFile('upload.pt')
    maxSize = MAX_UPLOAD
    progressTargets = ('upload-progress',)   # X-Live-Progress may write here

    def canUpload(self):
        return checkPermission('demo.Upload', self.context)

    def uploads(self):
        return [uploadHTML(r)
                for r in removeSecurityProxy(self.context).last(20)]

    def maxSizeText(self):
        return sizeText(self.maxSize)


def fileName(upload):
    # Browsers send a base name; older ones a whole (Windows) path.
    name = posixpath.basename(str(getattr(upload, 'filename', '') or '')
                              .replace('\\', '/')).strip()
    return name[:200] or 'unnamed'


class UploadView(BrowserView):
    """@@upload (permission demo.Upload): POST multipart/form-data with a
    ``file`` field; answers JSON {name, size, sha256}."""

    def __call__(self):
        response = self.request.response
        response.setHeader('Content-Type', 'application/json')
        try:
            record = self.store()
        except LiveError as e:
            response.setStatus(e.status)
            return json.dumps(e.asDict())
        return json.dumps({'name': record['name'], 'size': record['size'],
                           'sha256': record['sha256']})

    def store(self):
        request = self.request
        if request.method != 'POST':
            raise BadRequest('POST the file as multipart/form-data')
        length = request.getHeader('Content-Length', '') or ''
        if length.isdigit() and int(length) > MAX_UPLOAD + SLACK:
            raise TooLarge('the file is larger than %s' % sizeText(MAX_UPLOAD))
        upload = request.form.get('file')
        if upload is None or not hasattr(upload, 'read'):
            raise BadRequest('send the file in a multipart/form-data field '
                             'named "file"')
        digest, size = hashlib.sha256(), 0
        while True:
            chunk = upload.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
        if size > MAX_UPLOAD:
            raise TooLarge('the file is larger than %s' % sizeText(MAX_UPLOAD))
        principal = request.principal
        uploads = removeSecurityProxy(self.context)
        record = uploads.add(fileName(upload), size, digest.hexdigest(),
                             principal.id, principal.title)
        publishOnCommit(Prepend('uploads', safe(uploadHTML(record))),
                        getPath(uploads))   # the group of upload.html
        return record
