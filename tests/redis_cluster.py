"""A real Redis Cluster owned by the test suite: N masters (and replicas) on loopback ports.

Every node is a ``redis-server --cluster-enabled yes`` child process with its own port, its own
cluster-bus port and its own directory under the suite's temporary directory. The harness
builds the cluster itself (``CLUSTER SET-CONFIG-EPOCH``, ``ADDSLOTSRANGE``, ``MEET``,
``REPLICATE``) instead of running ``redis-cli --cluster create``, whose join check sleeps a
whole second per round, and then waits for the state every client relies on: every node says
``cluster_state:ok`` with all 16384 slots served, every node knows every other one with its
role, and every replica has finished its initial sync.

Failover is real too: :meth:`LocalCluster.kill_master` kills a master with SIGKILL and waits
until a replica has been promoted and every surviving node routes its slots to it;
:meth:`LocalCluster.heal` restarts what was killed (it rejoins as a replica of the new master)
and waits for the full topology again, so the next test starts from a healthy cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .redis_server import RedisServer, free_port, wait_until

SLOTS = 16384


class LocalClusterNode(RedisServer):
    """One cluster-mode ``redis-server``, with its cluster-bus port chosen free as well
    (the default, port + 10000, may be taken or past 65535)."""

    def __init__(self, binary: str, directory: Path, *, node_timeout_ms: int) -> None:
        self.bus_port = free_port()
        super().__init__(
            binary,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", str(node_timeout_ms),
            # A replica may always take over, however long its link was down: tests kill
            # masters on purpose and must get a promotion, not a "data too old" refusal.
            "--cluster-replica-validity-factor", "0",
            # The topology stays as built: no replica wanders to an orphaned master.
            "--cluster-allow-replica-migration", "no",
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
            "--logfile", "redis.log",
            directory=directory,
        )  # fmt: skip


class Promotion(NamedTuple):
    """What :meth:`LocalCluster.kill_master` did."""

    killed: RedisServer
    """The master that was killed (stopped; :meth:`LocalCluster.heal` restarts it)."""
    promoted: RedisServer
    """Its replica, now the master of the killed node's slots."""
    seconds: float
    """From the kill until every surviving node routes the slots to ``promoted``."""


class LocalCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each.

    Args:
        binary: Path of ``redis-server``.
        directory: Parent of the nodes' working directories.
        masters: Number of masters (the slots are split evenly between them).
        replicas: Replicas per master (at least 1 for :meth:`kill_master`).
        node_timeout_ms: ``cluster-node-timeout``: how long a silent node takes to be
            flagged as failing, hence the floor of a failover's duration.
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
    ) -> None:
        self.masters_count = masters
        self.replicas_count = replicas
        self.nodes = [
            LocalClusterNode(binary, directory / f"node-{i}", node_timeout_ms=node_timeout_ms)
            for i in range(masters * (1 + replicas))
        ]
        self.ids: dict[int, str] = {}
        """Cluster node id by port (stable across restarts: it lives in ``nodes.conf``)."""
        self.startup_seconds = 0.0
        """How long :meth:`start` took, from the first process launched to a ready cluster."""

    # -- addresses -----------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for ``RedisCluster(startup_nodes=...)``."""
        return [n.address for n in self.nodes]

    @property
    def url(self) -> str:
        """The cluster's ``redis+cluster://`` URL (every node as a seed)."""
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.startup_nodes) + "/"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start every node, build the cluster and wait until it is fully ready."""
        began = time.monotonic()
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()
        for node in self.nodes:
            self.ids[node.port] = node.client().execute_command("CLUSTER", "MYID")
        masters = self.nodes[: self.masters_count]
        for i, node in enumerate(masters):
            c = node.client()
            # Distinct config epochs up front, as redis-cli does: otherwise the nodes resolve
            # the collision themselves, one gossip round at a time.
            c.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            first = i * SLOTS // self.masters_count
            last = (i + 1) * SLOTS // self.masters_count - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        seed = self.nodes[0].client()
        for node in self.nodes[1:]:
            seed.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        replicas = self.nodes[self.masters_count :]
        for j, node in enumerate(replicas):
            master_id = self.ids[masters[j % self.masters_count].port]
            # REPLICATE needs the replica to know the master already (through gossip).
            wait_until(
                lambda n=node, m=master_id: m in n.client().execute_command("CLUSTER", "NODES"),
                what=f"node {node.port} learning master {master_id}",
            )
            node.client().execute_command("CLUSTER", "REPLICATE", master_id)
        self.wait_healthy()
        self.startup_seconds = time.monotonic() - began

    def close(self) -> None:
        """Kill every node (by its pid) and remove its directory."""
        for node in self.nodes:
            node.close()

    # -- topology ------------------------------------------------------------------------

    def live(self) -> list[LocalClusterNode]:
        """The nodes whose process is running."""
        return [n for n in self.nodes if n.running]

    def role(self, node: RedisServer) -> str:
        """``master`` or ``slave``, as the node itself reports it."""
        return str(node.client().info("replication")["role"])

    def masters(self) -> list[LocalClusterNode]:
        """The live nodes that are masters now (failovers move the role)."""
        return [n for n in self.live() if self.role(n) == "master"]

    def master_for(self, key: str) -> LocalClusterNode:
        """The live master serving the slot of ``key``."""
        c = self.live()[0].client()
        slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
        for first, last, owner, *_ in c.execute_command("CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return self._by_port(int(owner[1]))
        raise LookupError(f"no node serves slot {slot}")

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        """The live nodes replicating from ``master``."""
        mid = self.ids[master.port]
        c = master.client()
        lines = c.execute_command("CLUSTER", "REPLICAS", mid)
        ports = {int(line.split()[1].split("@")[0].rsplit(":", 1)[1]) for line in lines}
        return [n for n in self.live() if n.port in ports]

    def _by_port(self, port: int) -> LocalClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def _node_table(self, node: RedisServer) -> dict[str, tuple[str, str]]:
        """``CLUSTER NODES`` of ``node``: id -> (flags, master id or '-')."""
        table = {}
        for line in node.client().execute_command("CLUSTER", "NODES").splitlines():
            fields = line.split()
            table[fields[0]] = (fields[2], fields[3])
        return table

    def _healthy(self) -> bool:
        nodes = self.live()
        if len(nodes) != len(self.nodes):
            return False
        masters = 0
        for node in nodes:
            c = node.client()
            info = c.execute_command("CLUSTER", "INFO")
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            if (
                fields["cluster_state"] != "ok"
                or int(fields["cluster_slots_ok"]) != SLOTS
                or int(fields["cluster_known_nodes"]) != len(self.nodes)
            ):
                return False
            # Every node sees every other one healthy (no fail / pfail / handshake flags),
            # with the same masters: clients may ask any node for the slot map.
            table = self._node_table(node)
            for flags, _ in table.values():
                if any(f in flags.split(",") for f in ("fail", "fail?", "handshake", "noaddr")):
                    return False
            if sum("master" in flags for flags, _ in table.values()) != self.masters_count:
                return False
            repl = c.info("replication")
            if repl["role"] == "master":
                masters += 1
                if int(repl["connected_slaves"]) != self.replicas_count:
                    return False
            elif repl["master_link_status"] != "up" or int(repl["master_sync_in_progress"]):
                return False
        return masters == self.masters_count

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Wait until every node is up, ``cluster_state:ok`` with every slot served, known to
        every other node with its role, and every replica in sync; return the seconds taken."""
        return wait_until(self._healthy, what="cluster ready", timeout=timeout)

    # -- faults --------------------------------------------------------------------------

    def kill_master(self, key: str | None = None, timeout: float = 60.0) -> Promotion:
        """Kill (SIGKILL) a master, the one serving ``key`` if given, and wait for promotion.

        Returns once one of its replicas reports itself master and every surviving node
        routes the killed master's slots to it and says ``cluster_state:ok``.
        """
        victim = self.master_for(key) if key is not None else self.masters()[0]
        candidates = self.replicas_of(victim)
        if not candidates:
            raise RuntimeError(f"master {victim.port} has no replica to promote")
        slots = self._slots_of(victim)
        began = time.monotonic()
        victim.stop()
        promoted: list[RedisServer] = []

        def done() -> bool:
            new = [n for n in candidates if n.running and self.role(n) == "master"]
            if not new:
                return False
            for node in self.live():
                c = node.client()
                if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                    return False
                owners = {
                    int(owner[1])
                    for first, last, owner, *_ in c.execute_command("CLUSTER", "SLOTS")
                    if (first, last) in slots
                }
                if owners != {new[0].port}:
                    return False
            promoted[:] = new[:1]
            return True

        wait_until(done, what=f"promotion of a replica of {victim.port}", timeout=timeout)
        return Promotion(victim, promoted[0], time.monotonic() - began)

    def _slots_of(self, master: RedisServer) -> set[tuple[int, int]]:
        c = master.client()
        return {
            (first, last)
            for first, last, owner, *_ in c.execute_command("CLUSTER", "SLOTS")
            if int(owner[1]) == master.port
        }

    def heal(self, timeout: float = 60.0) -> None:
        """Restart every stopped node (it rejoins, as a replica of whoever owns its old
        slots now), resume paused ones, and wait until the cluster is fully healthy."""
        for node in self.nodes:
            if node.proc is not None:
                node.resume()  # harmless when not paused
            if not node.running:
                node.start()
        self.wait_healthy(timeout)

    def flush(self) -> None:
        """Empty every master and drop its loaded scripts; wait until its replicas have
        applied the flush."""
        for node in self.masters():
            c = node.client()
            c.flushall()
            c.script_flush()
            if self.replicas_count:
                c.execute_command("WAIT", self.replicas_count, 5000)

    def key_per_master(self, prefix: str = "k") -> Iterator[str]:
        """One key for each master (distinct slots on distinct nodes), for spreading tests."""
        seen: set[int] = set()
        i = 0
        while len(seen) < self.masters_count:
            key = f"{prefix}{i}"
            i += 1
            port = self.master_for(key).port
            if port not in seen:
                seen.add(port)
                yield key
