"""The fault-schedule checker (issue 19, item 5), in the manner of
Jepsen's histories and FoundationDB's simulation.

- `chat`: the site's page under test (a chat stored in the ZODB) and a
  data manager that makes a commit slow between its vote and its finish.
- `model`: what a browser does with what it receives (livepage.js's
  de-duplication by event id and by key); the driver and the checker
  share it.
- `history`: the record of every step of a run.
- `schedule`: a seed becomes a plan of client steps and faults.
- `cluster`: ZEO, redis-server and the live processes of one run.
- `client`: a client that behaves as livepage.js does.
- `driver`: runs a plan (its clients and faults) against a cluster and
  records the history.
- `soak`: runs schedules, checks them, reports (``make soak``).
- `checker`: the promised invariants, checked over a history and the
  final database.

``python -m zorg.live.tests.faults --seconds 600`` (``make soak``) runs
schedules for as long as it is given.
"""
