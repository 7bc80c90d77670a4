"""The pure core of zorg.live: the rules, without I/O.

Everything here is a function of its arguments or a small state object that
its caller guards: no zope.publisher, no threading, no broker, no clock of
its own (a caller passes one in). tests/test_layering.py imports this
package with those made unimportable.

- delivery    what a page is sent and when (long-poll and stream loops)
- wire        every byte zorg.live sends (answers, frames, headers)
- events      the events and their JSON
- audience    who of a group an event is for
- connection  the messages of a shared connection and who may attach
- inputs      an input, checked once where it arrives
- ticket      connection tickets: who a browser's connection is, signed
"""
