"""Zope 6 glue: LivePages as Five browser views on OFS content.

The core (zorg.live.page, broker, server) is used unchanged; this package
adds only what differs on Zope 6:

- who the user is (AccessControl's security manager, not zope.security's
  interaction): `page.LivePage.principalInfo`;
- a page's group is its context's physical path (OFS objects);
- the page permission is checked with AccessControl (Zope's objects carry
  no zope.security proxies): `views.ClientView`;
- `<live:update>` renders with the request Zope is publishing
  (zope.globalrequest), since ZPublisher's interaction has no participation.

LiveServerHTTP serves Zope's own WSGI application: put
``use = egg:zorg.live#main`` in the ``[server:main]`` section of zope.ini
and start the instance with ``runwsgi etc/zope.ini``. See README.txt here.
"""
