"""The service layer: what the drill does to an estate, once. Gateway control (status, down, up, the seed's recovery
order for one tunnel), replica control (status, settings, restart, waits, catch-up), the writer (acknowledged rows
on the source) and the one restore sequence. Chaos Toolkit activities (vpn/, replication/), the drill control,
`drpoc recover` and the sampler all call these; they import only the core, the inventory and the transports
(remote.py for SSH, db.py for SQL). A running drill is told what happened through core.recorder."""
