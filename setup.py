import os

from setuptools import find_namespace_packages, setup


def read(*parts):
    with open(os.path.join(os.path.dirname(__file__), *parts)) as f:
        return f.read()


setup(
    name='zorg.live',
    version='0.1.0.dev0',
    description='Live pages for Zope component-architecture sites: '
                'server push over SSE and long-poll without a worker '
                'thread per open page',
    long_description=read('README.txt') + '\n\n' + read('CHANGES.txt'),
    long_description_content_type='text/x-rst',
    license='ZPL-2.1',
    classifiers=[
        'Framework :: Zope :: 3',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
    ],
    package_dir={'': 'src'},
    packages=find_namespace_packages('src', include=['zorg.*']),
    include_package_data=True,
    package_data={'': ['*.txt', '*.zcml', '*.js', '*.css', '*.pt',
                       '*.xml', '*.conf', '*.html', '*.png',
                       '*.ini', '*.po', '*.pot', '*.mo']},
    zip_safe=False,
    python_requires='>=3.11',
    install_requires=[
        'setuptools',
        'zope.interface >= 6.0',
        'zope.component >= 6.0',
        'zope.configuration >= 5.0',
        'zope.event >= 5.0',
        'zope.publisher >= 7.0',
        # server/checkerleak.py works around a leak of its C checker
        # through three of its internals (no public API lists the
        # checkers); tested up to 8.4.
        'zope.security >= 6.0, < 9',
        'zope.browserpage >= 5.0',
        'zope.browserresource >= 5.0',
        'zope.traversing >= 5.0',
        'zope.app.wsgi >= 5.0',
        'zope.app.appsetup >= 5.0',
        'zope.app.publication >= 5.0',
        'zope.principalregistry >= 5.0',
        'zope.securitypolicy >= 5.0',
        'zope.login >= 4.0',
        'zope.password >= 5.0',
        'zope.error >= 5.0',
        'zope.testing >= 5.0',
        'ZODB >= 6.0',
        'ZConfig >= 4.0',
        'waitress >= 3.0',
        # LiveServerHTTP's own protocol parses with httptools; uvicorn is
        # still used for its proxy-headers middleware (public API).
        'httptools >= 0.6',
        'uvloop >= 0.19',
        'uvicorn >= 0.30',
        'a2wsgi >= 1.10',
        # The sans-I/O ServerProtocol frames the WebSocket, through its
        # public API only (receive_data, events_received, accept,
        # send_response, data_to_send, send_*; the `state` argument):
        # test_liveproto checks that no module uses an underscore name.
        'websockets >= 14.0',
        'transaction >= 3.0',
        'redis >= 5.0',
        'PasteDeploy >= 3.0',
    ],
    extras_require={
        'test': [
            'pytest >= 8.0',
            'aiohttp >= 3.9',
            'zope.testrunner >= 6.0',
            'playwright >= 1.40',
            # every multi-process test runs on one shared database
            'ZEO >= 6.0',
        ],
        # Zope 6 instances (zorg.live.zope6); Paste for the translogger
        # of the zope.ini that mkwsgiinstance writes.
        'zope6': [
            'Zope >= 6.0',
            'Paste >= 3.0',
        ],
        'grok': [
            'grok >= 6.0',
        ],
        # One database for several processes (README, "Running in
        # production"): a ZEO server, or RelStorage on PostgreSQL
        # (psycopg2's wheel with its own libpq: nothing to compile).
        'zeo': [
            'ZEO >= 6.0',
        ],
        'relstorage': [
            'RelStorage >= 4.0',
            'psycopg2-binary >= 2.9',
        ],
        # The Plone add-on (zorg.live.plone); `make test-plone` installs
        # it into a virtualenv of its own.
        'plone': [
            'Zope >= 6.0',
            'Paste >= 3.0',
            'Plone >= 6.0',
        ],
    },
    entry_points={
        'console_scripts': [
            'zorg-live = zorg.live.server.runner:main',
        ],
        'paste.server_runner': [
            'main = zorg.live.server.paste:serve',
        ],
        'paste.app_factory': [
            'main = zorg.live.server.paste:app_factory',
        ],
        # Plone includes the add-on's ZCML (plone.autoinclude); the
        # add-on is then installed with its profile.
        'plone.autoinclude.plugin': [
            'target = plone',
            'module = zorg.live.plone',
        ],
    },
)
