"""A real Sentinel deployment owned by the test suite: a primary, its replicas, 3 Sentinels.

Every process is a child ``redis-server`` on its own loopback port and directory under the
suite's temporary directory; the Sentinels run ``redis-server sentinel.conf --sentinel``. Each
Sentinel's configuration names its own id and already lists the other Sentinels and the
replicas (``known-sentinel``, ``known-replica``, the lines Sentinel itself writes on a
rewrite), so they agree at once instead of after hello messages (every 2 s) and ``INFO``
polls (every 10 s). Readiness is what a failover needs: every replica in sync, and every
Sentinel naming the same primary with ``SENTINEL CKQUORUM`` answering OK and no instance
flagged down.

:meth:`LocalSentinel.failover` (``SENTINEL FAILOVER``) and :meth:`LocalSentinel.kill_primary`
(SIGKILL, then the Sentinels' own vote) wait until every Sentinel names the new primary and it
says ``role:master``; :meth:`LocalSentinel.heal` restarts what was killed and turns the old
primary into a replica of the new one, so the next test starts from a healthy deployment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

from .redis_server import RedisServer, wait_until

SERVICE = "mymaster"


class Failover(NamedTuple):
    """What :meth:`LocalSentinel.failover` or :meth:`LocalSentinel.kill_primary` did."""

    old: RedisServer
    """The primary before (stopped after a kill; a replica of ``new`` after :meth:`heal`)."""
    new: RedisServer
    """The promoted replica, now named by every Sentinel."""
    seconds: float
    """From the command (or the kill) until every Sentinel names ``new``."""


class SentinelServer(RedisServer):
    """One ``redis-server sentinel.conf --sentinel`` process.

    Its configuration file is written by :meth:`configure` before the first start; Sentinel
    rewrites it as it learns, so a restart keeps what it knew.
    """

    def __init__(self, binary: str, directory: Path) -> None:
        super().__init__(binary, directory=directory)
        self.myid = os.urandom(20).hex()
        self.conf = directory / "sentinel.conf"

    def configure(self, text: str) -> None:
        """Write the configuration file (before the first :meth:`start`)."""
        self.conf.write_text(text)

    def args(self) -> list[str]:
        return [self.binary, str(self.conf), "--sentinel"]


class LocalSentinel:
    """A primary with ``replicas`` replicas, monitored by ``sentinels`` Sentinels (quorum 2).

    Args:
        binary: Path of ``redis-server``.
        directory: Parent of the processes' working directories.
        replicas: Number of replicas of the primary.
        sentinels: Number of Sentinels (quorum is a majority of them).
        down_after_ms: ``down-after-milliseconds``: how long a silent primary takes to be
            subjectively down, hence the floor of an automatic failover's duration.
        failover_timeout_ms: ``failover-timeout``; a Sentinel does not retry a failover of
            the same primary for twice this long, so it bounds how soon tests can fail over
            again.
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 2000,
    ) -> None:
        common = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        self.servers = [RedisServer(binary, *common, directory=directory / "server-0")]
        primary = self.servers[0]
        follow = ("--replicaof", "127.0.0.1", str(primary.port))
        self.servers += [
            RedisServer(binary, *common, *follow, directory=directory / f"server-{i}")
            for i in range(1, 1 + replicas)
        ]
        self.sentinels = [
            SentinelServer(binary, directory / f"sentinel-{i}") for i in range(sentinels)
        ]
        self.quorum = sentinels // 2 + 1
        for s in self.sentinels:
            lines = [
                f"port {s.port}",
                "bind 127.0.0.1",
                f"dir {s.dir}",
                "logfile sentinel.log",
                f"sentinel myid {s.myid}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} {self.quorum}",
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}",
                f"sentinel parallel-syncs {SERVICE} {replicas}",
                *(f"sentinel known-replica {SERVICE} 127.0.0.1 {r.port}" for r in self.servers[1:]),
                *(
                    f"sentinel known-sentinel {SERVICE} 127.0.0.1 {o.port} {o.myid}"
                    for o in self.sentinels
                    if o is not s
                ),
            ]
            s.configure("\n".join(lines) + "\n")
        self.startup_seconds = 0.0
        """How long :meth:`start` took, from the first process launched to readiness."""

    # -- addresses -----------------------------------------------------------------------

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every Sentinel, for ``Sentinel(...)``."""
        return [s.address for s in self.sentinels]

    @property
    def url(self) -> str:
        """The deployment's ``redis+sentinel://`` URL (every Sentinel, the service, db 0)."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinel_addresses)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the servers, then the Sentinels, and wait until the deployment is ready."""
        began = time.monotonic()
        for server in self.servers:
            server.launch()
        for server in self.servers:
            server.wait_ready()
        for s in self.sentinels:
            s.launch()
        for s in self.sentinels:
            s.wait_ready()
        self.wait_healthy()
        self.startup_seconds = time.monotonic() - began

    def close(self) -> None:
        """Kill every process (by its pid) and remove its directory."""
        for s in self.sentinels:
            s.close()
        for server in self.servers:
            server.close()

    # -- topology ------------------------------------------------------------------------

    def _named(self, sentinel: SentinelServer) -> int:
        _host, port = sentinel.client().sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    @property
    def primary(self) -> RedisServer:
        """The server the Sentinels name as primary now (failovers move it)."""
        port = self._named(next(s for s in self.sentinels if s.running))
        return next(server for server in self.servers if server.port == port)

    def replicas(self) -> list[RedisServer]:
        """Every server but the primary."""
        primary = self.primary
        return [server for server in self.servers if server is not primary]

    def _healthy(self) -> bool:
        if not all(p.running for p in (*self.servers, *self.sentinels)):
            return False
        ports = {self._named(s) for s in self.sentinels}
        if len(ports) != 1:
            return False
        primary = self.primary
        if primary.client().info("replication")["role"] != "master":
            return False
        for replica in self.replicas():
            repl = replica.client().info("replication")
            if (
                repl["role"] != "slave"
                or int(repl["master_port"]) != primary.port
                or repl["master_link_status"] != "up"
                or int(repl["master_sync_in_progress"])
            ):
                return False
        for s in self.sentinels:
            c = s.client()
            c.execute_command("SENTINEL", "CKQUORUM", SERVICE)  # raises unless usable
            state = c.sentinel_master(SERVICE)
            if state["flags"] != "master" or state["num-slaves"] != len(self.servers) - 1:
                return False
            if state["num-other-sentinels"] != len(self.sentinels) - 1:
                return False
            for replica in c.sentinel_slaves(SERVICE):
                # Not its ``master-link-status``: Sentinel learns it from INFO every 10 s (every
                # 1 s once the primary is down, in time for a failover); the link itself was
                # checked on the replica above.
                if replica["flags"] != "slave":
                    return False
            for other in c.sentinel_sentinels(SERVICE):
                # ``master_down`` is only a stale answer to a past vote (cleared after 5 s);
                # what a failover needs is a live link to every other Sentinel.
                if {"s_down", "disconnected"} & set(other["flags"].split(",")):
                    return False
        return True

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Wait until every process is up, every replica in sync with the primary, and every
        Sentinel names that primary, sees every replica and Sentinel healthy, and has a
        quorum; return the seconds taken."""
        return wait_until(self._healthy, what="sentinel deployment ready", timeout=timeout)

    # -- faults --------------------------------------------------------------------------

    def _wait_new_primary(self, old: RedisServer, began: float, timeout: float) -> Failover:
        def done() -> bool:
            live = [s for s in self.sentinels if s.running]
            ports = {self._named(s) for s in live}
            if len(ports) != 1 or old.port in ports:
                return False
            return bool(self.primary.client().info("replication")["role"] == "master")

        wait_until(done, what=f"failover away from {old.port}", timeout=timeout)
        return Failover(old, self.primary, time.monotonic() - began)

    def failover(self, timeout: float = 60.0) -> Failover:
        """``SENTINEL FAILOVER``: promote a replica while the primary is alive; wait until
        every Sentinel names the new primary and it says ``role:master``."""
        old = self.primary
        began = time.monotonic()
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SERVICE)
        return self._wait_new_primary(old, began, timeout)

    def kill_primary(self, timeout: float = 60.0) -> Failover:
        """Kill (SIGKILL) the primary; wait until the Sentinels have voted, promoted a
        replica, and every one of them names it."""
        old = self.primary
        began = time.monotonic()
        old.stop()
        return self._wait_new_primary(old, began, timeout)

    def heal(self, timeout: float = 60.0) -> None:
        """Restart whatever is stopped, make every server but the named primary its replica,
        and wait until the deployment is healthy."""
        for p in (*self.servers, *self.sentinels):
            if p.proc is not None:
                p.resume()  # harmless when not paused
        for sentinel in self.sentinels:
            if not sentinel.running:
                sentinel.start()
        # Agreement first: a server restarted while some Sentinel still names it primary
        # would come back as an empty primary that Sentinel keeps.
        wait_until(
            lambda: len({self._named(s) for s in self.sentinels}) == 1,
            what="sentinels agreeing on the primary",
            timeout=timeout,
        )
        for server in self.servers:
            if not server.running:
                server.start()
        primary = self.primary
        for server in self.replicas():
            repl = server.client().info("replication")
            # A demoted or restarted primary says role:master until Sentinel converts it,
            # which it does only after 8 s of stable reports; the harness does it at once.
            if repl["role"] != "slave" or int(repl["master_port"]) != primary.port:
                server.client().replicaof("127.0.0.1", primary.port)
        self.wait_healthy(timeout)

    def flush(self) -> None:
        """Empty the primary and wait until every replica has applied it."""
        c = self.primary.client()
        c.flushall()
        c.script_flush()
        c.execute_command("WAIT", len(self.servers) - 1, 5000)


__all__ = ["SERVICE", "Failover", "LocalSentinel", "SentinelServer"]
