"""The agent's own Prometheus metrics, in a registry of its own (several agents may share a process in tests).

- `devmig_agent_publish_duration_seconds` (histogram): a publish to the store, from the call to its commit;
- `devmig_agent_publish_failures_total{reason}` (counter): publishes and heartbeats the store did not take:
  `unavailable` (no connection), `database` (the database refused), `input` (devmig refused it), `internal`;
- `devmig_agent_last_publish_timestamp_seconds` (gauge): when the last publish succeeded (unix seconds);
- `devmig_agent_events_total{subsystem}` (counter): device events that concern the inventory;
- `devmig_agent_events_coalesced_total` (counter): events read together with an earlier one of their burst;
- `devmig_agent_free_instances{parent,type}` (gauge): this host's free instances per type, as last read.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devmig.fleet.records import HostRecord

#: publish latencies worth telling apart: a few ms (SQLite, unchanged) up to a store answering in seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.publish_seconds = Histogram(
            "devmig_agent_publish_duration_seconds",
            "Time a publish to the fleet store took.",
            buckets=BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "devmig_agent_publish_failures",
            "Publishes and heartbeats the store did not take, by reason.",
            ["reason"],
            registry=r,
        )
        self.last_publish = Gauge(
            "devmig_agent_last_publish_timestamp_seconds", "When the last publish succeeded (unix time).", registry=r
        )
        self.events = Counter(
            "devmig_agent_events", "Device events that concern the inventory, by subsystem.", ["subsystem"], registry=r
        )
        self.coalesced = Counter(
            "devmig_agent_events_coalesced", "Events read together with an earlier event of their burst.", registry=r
        )
        self.free = Gauge(
            "devmig_agent_free_instances", "Free instances of this host's types.", ["parent", "type"], registry=r
        )

    def read(self, record: HostRecord) -> None:
        """The free counts of a record just read: types gone since are dropped."""
        self.free.clear()
        for t in record.types:
            if t.available is not None:
                self.free.labels(t.parent, t.type_id).set(t.available)
