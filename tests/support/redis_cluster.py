"""A real Redis Cluster (and a real Sentinel set-up) on loopback ports, for scale-out tests.

The cluster is made of plain `redis-server --cluster-enabled yes` processes joined by
`redis-cli --cluster create`, each in its own directory with AOF on, so a node can be
killed and restarted on the same port with its data and its `nodes.conf` (a crash and
restart), or killed for good so that its replica takes over (a failover). The cluster bus
port is chosen explicitly (`cluster-port`) because port + 10000 may not exist.

`cluster-node-timeout` is low (1000 ms by default) so that a failed node is noticed, and a
replica promoted, in a second or two rather than the production default of fifteen.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from tests.support.servers import free_port, wait_port

HOST = "127.0.0.1"


def _exe(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise RuntimeError(f"{name} not installed: run `make test`, which installs it")
    return exe


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached after {timeout}s")
        time.sleep(0.05)


def _parse_info(raw: str) -> dict[str, str]:
    out = {}
    for line in raw.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass
class ClusterNodeProcess:
    """One redis-server of the cluster; `stop()` and `start()` keep port, dir and data."""

    port: int
    bus_port: int
    workdir: Path
    node_timeout_ms: int
    full_coverage: bool = True
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start (again) on the same port and directory: AOF and nodes.conf are reloaded."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            _exe("redis-server"),
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.workdir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "yes" if self.full_coverage else "no",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--repl-diskless-sync-delay", "0",  # default 5 s before a replica's first sync
            "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self, *, kill: bool = False) -> None:
        """SIGKILL with `kill` (a crash: nothing flushed beyond what fsync already wrote)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            proc.wait(10)

    def admin(self) -> redis.Redis:
        """A synchronous client to this node alone (cluster administration in tests)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2,
                           socket_connect_timeout=2, decode_responses=True)

    def cluster_info(self) -> dict[str, str]:
        with self.admin() as r:
            raw = r.execute_command("CLUSTER", "INFO")
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return _parse_info(str(raw))

    def role(self) -> str:
        """'master' or 'slave', as this node itself says."""
        with self.admin() as r:
            return str(r.execute_command("ROLE")[0])

    def replication(self) -> dict[str, object]:
        with self.admin() as r:
            return dict(r.info("replication"))

    def node_id(self) -> str:
        with self.admin() as r:
            return str(r.execute_command("CLUSTER", "MYID"))


@dataclass
class RedisClusterProcesses:
    nodes: list[ClusterNodeProcess]
    replicas: int
    masters_wanted: int = 3

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, n.port) for n in self.nodes]

    @property
    def url(self) -> str:
        """The form `connect_redis` understands: every node as a startup node."""
        return "redis+cluster://" + ",".join(n.addr for n in self.nodes)

    def client(self, **kwargs: object) -> RedisCluster:
        """A plain redis-py cluster client (create it inside the test's event loop); the
        gateway's own is `gateway.redis_connect.connect_redis(self.url, ...)`."""
        kwargs.setdefault("socket_timeout", 2.0)
        kwargs.setdefault("socket_connect_timeout", 2.0)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in self.startup_nodes],
                            **kwargs)  # type: ignore[arg-type]

    def running_nodes(self) -> list[ClusterNodeProcess]:
        return [n for n in self.nodes if n.running]

    def masters(self) -> list[ClusterNodeProcess]:
        """Running nodes that are masters now (roles change after a failover)."""
        return [n for n in self.running_nodes() if n.role() == "master"]

    def node_for_key(self, key: str) -> ClusterNodeProcess:
        """The running master that serves `key`'s hash slot now."""
        alive = self.running_nodes()
        with alive[0].admin() as r:
            slot = int(r.execute_command("CLUSTER", "KEYSLOT", key))
            ranges = r.execute_command("CLUSTER", "SLOTS")
        for start, end, master, *_ in ranges:
            if int(start) <= slot <= int(end):
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"slot {slot} of {key!r} is not served")

    def replica_of(self, master: ClusterNodeProcess) -> ClusterNodeProcess:
        master_id = master.node_id()
        for node in self.running_nodes():
            if node is master:
                continue
            with node.admin() as r:
                info = r.info("replication")
                if info.get("role") == "slave" and int(info["master_port"]) == master.port:
                    return node
        raise LookupError(f"no running replica of {master.addr} ({master_id})")

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Until every running node says cluster_state:ok with all slots served, and as
        many masters as the cluster was created with."""
        def ok() -> bool:
            running = self.running_nodes()
            for node in running:
                info = node.cluster_info()
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
            return len([n for n in running if n.role() == "master"]) == self.masters_wanted

        _wait("cluster_state:ok on all nodes", ok, timeout)

    def wait_seen_failed(self, node: ClusterNodeProcess, timeout: float = 15.0) -> None:
        """Until every running node has flagged the (stopped) `node` as failed."""
        addr = node.addr

        def flagged() -> bool:
            for other in self.running_nodes():
                with other.admin() as r:
                    lines = str(r.execute_command("CLUSTER", "NODES")).splitlines()
                fields = next((ln.split() for ln in lines if f" {addr}@" in f" {ln}"), None)
                if fields is None or "fail" not in fields[2].split(","):
                    return False
            return True

        _wait(f"{addr} flagged as failed", flagged, timeout)

    def wait_synced(self, timeout: float = 10.0) -> None:
        """Until every replica has applied everything its master wrote (before a kill that
        should lose nothing)."""
        for master in self.masters():
            with master.admin() as r:
                if self.replicas:
                    r.execute_command("WAIT", self.replicas, int(timeout * 1000))

    def kill(self, node: ClusterNodeProcess) -> None:
        """SIGKILL one node (it stays down until `restart`)."""
        node.stop(kill=True)

    def restart(self, node: ClusterNodeProcess, *, wait: bool = True) -> None:
        node.start()
        if wait:
            self.wait_ok()

    def crash_and_restart(self, node: ClusterNodeProcess) -> None:
        """A master dies and comes back on the same port and data (no replica takes over
        in the moment it is away)."""
        self.kill(node)
        self.restart(node)

    def fail_over(self, master: ClusterNodeProcess, timeout: float = 15.0) -> ClusterNodeProcess:
        """Kill a master for good and wait until its replica serves its slots; returns the
        promoted node. Needs replicas."""
        if not self.replicas:
            raise RuntimeError("fail_over needs a cluster started with replicas")
        replica = self.replica_of(master)
        self.kill(master)
        _wait(f"{replica.addr} promoted", lambda: replica.role() == "master", timeout)
        self.wait_ok(timeout)
        return replica

    def flushall(self) -> None:
        for node in self.masters():
            with node.admin() as r:
                r.flushall()


@contextmanager
def redis_cluster(workdir: Path, *, masters: int = 3, replicas: int = 0,
                  node_timeout_ms: int = 1000,
                  full_coverage: bool = True) -> Iterator[RedisClusterProcesses]:
    """Start `masters` masters (+ `replicas` replicas each), joined and ready; stop all on
    exit. Each node has its own directory under `workdir`. `full_coverage=False`
    (cluster-require-full-coverage no) keeps the other slots served while a master with
    no replica is down."""
    nodes = [
        ClusterNodeProcess(free_port(), free_port(), workdir / f"node{i}", node_timeout_ms,
                           full_coverage)
        for i in range(masters * (1 + replicas))
    ]
    cluster = RedisClusterProcesses(nodes, replicas, masters)
    try:
        for node in nodes:
            node.start()
        done = subprocess.run(
            [_exe("redis-cli"), "--cluster", "create", *(n.addr for n in nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
        cluster.wait_ok()
        if replicas:
            _wait("replicas in sync", lambda: all(
                n.replication().get("master_link_status") == "up"
                for n in nodes if n.role() == "slave"), 15)
        yield cluster
    finally:
        for node in nodes:
            node.stop()


# -- Sentinel ----------------------------------------------------------------------------


@dataclass
class SentinelSetup:
    """One primary, one replica and one sentinel watching them as `master_name`."""

    master_name: str
    primary: subprocess.Popen[bytes]
    primary_port: int
    replica: subprocess.Popen[bytes]
    replica_port: int
    sentinel: subprocess.Popen[bytes]
    sentinel_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+sentinel://{HOST}:{self.sentinel_port}/{self.master_name}/0"

    def master_port(self) -> int:
        """The port of the primary as the sentinel sees it now."""
        with redis.Redis(host=HOST, port=self.sentinel_port, decode_responses=True) as s:
            addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            return int(addr[1])

    def kill_primary_and_wait_failover(self, timeout: float = 20.0) -> int:
        """SIGKILL the primary; returns the port of the promoted replica."""
        self.primary.kill()
        self.primary.wait(10)
        _wait("sentinel failover", lambda: self.master_port() == self.replica_port, timeout)
        with redis.Redis(host=HOST, port=self.replica_port, decode_responses=True) as r:
            _wait("replica promoted", lambda: str(r.execute_command("ROLE")[0]) == "master",
                  timeout)
        return self.replica_port


def _plain_redis(port: int, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    args = [_exe("redis-server"), "--port", str(port), "--bind", HOST, "--dir", str(workdir),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--repl-diskless-sync-delay", "0",
            "--logfile", str(workdir / "redis.log"), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


@contextmanager
def redis_sentinel(workdir: Path, *, master_name: str = "callgate",
                   down_after_ms: int = 1000) -> Iterator[SentinelSetup]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        primary_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
        primary = _plain_redis(primary_port, workdir / "primary")
        procs.append(primary)
        replica = _plain_redis(replica_port, workdir / "replica",
                               "--replicaof", HOST, str(primary_port))
        procs.append(replica)
        with redis.Redis(host=HOST, port=replica_port, decode_responses=True) as r:
            _wait("replica linked",
                  lambda: r.info("replication").get("master_link_status") == "up", 15)
        sdir = workdir / "sentinel"
        sdir.mkdir(parents=True, exist_ok=True)
        conf = sdir / "sentinel.conf"  # sentinel rewrites its config: it must be a file
        conf.write_text(
            f"port {sentinel_port}\nbind {HOST}\ndir {sdir}\nlogfile {sdir / 'sentinel.log'}\n"
            f"sentinel monitor {master_name} {HOST} {primary_port} 1\n"
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {master_name} {max(2 * down_after_ms, 2000)}\n",
            encoding="utf-8",
        )
        sentinel = subprocess.Popen([_exe("redis-server"), str(conf), "--sentinel"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sentinel)
        wait_port(sentinel_port)
        setup = SentinelSetup(master_name, primary, primary_port, replica, replica_port,
                              sentinel, sentinel_port, procs)

        def sees_replica() -> bool:
            with redis.Redis(host=HOST, port=sentinel_port, decode_responses=True) as s:
                return len(s.execute_command("SENTINEL", "REPLICAS", master_name)) > 0

        _wait("sentinel sees the replica", sees_replica, 15)
        yield setup
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
