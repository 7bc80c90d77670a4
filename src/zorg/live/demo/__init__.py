"""The zorg.live demo site: chat rooms with who-is-online, a shared counter
driven by model updates, upload progress, @@live-status with a live chart,
and pushes from outside the web.

Run it with ``python -m zorg.live.demo [--port 8080] [--dir var/demo]``
(``make demo``); push a message into a room with
``python -m zorg.live.demo send --port 8080 --group /lobby "text"`` or
``zorg-live send --config var/demo/zope.conf --user admin --group /lobby
"text"``.
"""
