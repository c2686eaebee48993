"""The per-host agent (`devmig agent`): keeps this host's inventory in the fleet store as the kernel changes it.

It publishes when it starts, then after each burst of device events (uevents of the mdev, PCI, VFIO and vDPA
devices and their drivers), sends a heartbeat between publishes, and re-reads everything at a long interval as a
safety net. The store may be down or slow: publishes are retried with backoff, the newest one kept. docs/fleet.md,
"Deploying the agent".

Modules: `events` (the uevent vocabulary, which part of an inventory each subsystem changes, the source seam),
`udev` (the real source, pyudev), `simevents` (the simulator's), `coalesce` (bursts into one read), `backoff`,
`notify` (systemd's notification socket), `logs` (the journal's conventions), `config` (agent.toml and the
command line), `metrics` (Prometheus), `hooks` (what runs after a publish), `loop` (the agent itself).
"""
