"""One place that turns the configured Redis url into a client: a single server, a Redis
Cluster or a Sentinel-managed primary. Domain packages take whatever comes back
(`Redis | RedisCluster`) and must not care which; this docstring says what that asks of them.

Accepted urls:

| url                                                     | client                           |
|---------------------------------------------------------|----------------------------------|
| `redis://[user:pass@]host[:port][/db]`                  | `Redis` (one server)             |
| `rediss://...`                                          | `Redis` over TLS                 |
| `unix://[user:pass@]/path/redis.sock[?db=N]`            | `Redis` on a Unix socket         |
| `redis+cluster://[user:pass@]host:port[,host:port...]`  | `RedisCluster` (`rediss+cluster` |
|                                                         | for TLS); the hosts are startup  |
|                                                         | nodes, any reachable one will do |
| `redis://host:port` with `cluster=True`                 | `RedisCluster`, one startup node |
| `redis+sentinel://[user:pass@]host:port[,host:port...]/MASTER[/db]` | the primary of      |
|                                                         | MASTER as the sentinels name it, |
|                                                         | followed across failovers        |

Default ports: 6379, and 26379 for sentinels. In the sentinel form `user:pass` is the
password of the Redis servers, not of the sentinels. `sentinel_master=` may give the master
name instead of the url path (then the path may hold just `/db`).

What works on a Redis Cluster, and what the domain packages therefore must do:

- A Lua script runs on the node that holds its keys, so every key of one EVALSHA must hash
  to one slot: give them one hash tag (`{site:NAME}`, `{card:ID}`). redis-py refuses
  (RedisClusterException, before sending) a script whose keys span slots; a key built
  inside the script and not passed in KEYS is a bug that works on one server and breaks on
  a cluster. A script with no keys runs on a random node.
- EVALSHA scripts are loaded on every primary by `SCRIPT LOAD`; a node that restarted or a
  replica that was promoted has an empty cache, and redis-py's script objects reload on
  NOSCRIPT, so nothing to do.
- A pipeline without a transaction may mix slots (it is split per node, not atomic).
  `pipeline(transaction=True)` (MULTI/EXEC) and WATCH need every key in one slot.
- Multi-key commands (MGET, SUNIONSTORE, RENAME, SMOVE, ...) need one slot too.
- `SCAN`/`KEYS`, `FLUSHALL`, `DBSIZE`, `INFO` are per node: redis-py's `scan_iter` walks
  every primary, but a cursor from one node means nothing on another. Prefer an index key
  (a set of ids) over scanning.
- Only db 0 exists; there is no `SELECT`, and no Unix socket.
- Pub/sub is broadcast cluster-wide (fine, but costly); streams are single keys.
- During a failover a few commands fail (ConnectionError, ClusterDownError, TryAgain):
  they are RedisError, so the configured `redis_down_policy` applies. When no node at all
  answers while the client first learns the cluster layout, redis-py raises
  RedisClusterException, which is *not* a RedisError: callers that catch RedisError to
  apply the policy must catch `REDIS_FAILURES` (below) instead.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, SlotNotCoveredError

RedisClient = Redis | RedisCluster

# What "Redis did not answer" looks like from any client this module returns.
REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException)

_PLAIN = ("redis", "rediss", "unix")
_CLUSTER = ("redis+cluster", "rediss+cluster")
_SENTINEL = ("redis+sentinel",)
_MASTER_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


class GatedRedisCluster(RedisCluster):
    """A RedisCluster that fits a gateway's load and its outage policy.

    - All of a site's counters sit on one node, so every authorize of a busy site goes to
      that node; redis-py's cluster pool *raises* MaxConnectionsError once `max_connections`
      commands are in flight on a node (there is no blocking pool for clusters), which a
      caller would take for an outage and refuse calls. Here callers past `max_in_flight`
      wait for a turn instead, as with a single server's BlockingConnectionPool.
    - Finding the cluster layout when no node answers raises RedisClusterException, which
      is not a RedisError; it is turned into a ConnectionError, so "Redis unreachable" looks
      the same whatever the deployment (the configured redis_down_policy applies).
    - redis-py 8 queues each command of a `pipeline(transaction=True)` through
      `asyncio.run` in a new thread; when the client must (re)learn the layout first (a
      fresh client, or after a node failed) it would do so on that short-lived loop and
      leave connections bound to it ("Event loop is closed" later). Connections opened
      off the client's own thread are closed again before that loop ends, so they
      reconnect on the right loop when next used.
    """

    def __init__(self, *, max_in_flight: int, **kwargs: Any) -> None:
        # connections beyond max_in_flight are left for pipelines, which bypass the gate
        kwargs.setdefault("max_connections", max_in_flight + 64)
        super().__init__(**kwargs)
        self.max_in_flight = max_in_flight
        self._gate = asyncio.Semaphore(max_in_flight)
        self._owner_thread = threading.get_ident()

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info,
                                            last_failed_node_name)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc
        finally:
            if threading.get_ident() != self._owner_thread:
                await self._disconnect_all()

    async def _disconnect_all(self) -> None:
        manager = self.nodes_manager
        nodes = {**manager.startup_nodes, **manager.nodes_cache}
        await asyncio.gather(*(node.disconnect() for node in nodes.values()),
                             return_exceptions=True)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            try:
                return await super().execute_command(*args, **kwargs)
            except SlotNotCoveredError as exc:  # its master is down and has no replica
                raise RedisConnectionError(str(exc)) from exc


class _SentinelMaster(Redis):
    """The primary behind a sentinel; closing it also closes the sentinel connections."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            for sentinel in pool.sentinel_manager.sentinels:
                await sentinel.aclose()


@dataclass(frozen=True)
class _Parts:
    scheme: str
    username: str | None
    password: str | None
    hosts: tuple[tuple[str, int], ...]
    path: str
    query: str


def connect_redis(url: str, *, cluster: bool, socket_timeout: float,
                  sentinel_master: str | None = None,
                  max_in_flight: int = 256) -> RedisClient:
    """A client for `url` (see the module docstring). Nothing is connected yet: the first
    command connects, so a daemon can start while Redis is away. `socket_timeout` bounds
    both connecting and each reply. `cluster=True` makes a `redis://`/`rediss://` url a
    cluster's startup node. `max_in_flight`: commands one cluster client runs at once
    (more wait their turn; see GatedRedisCluster). Raises ValueError naming what is wrong
    with a bad url."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("redis url is empty")
    if isinstance(socket_timeout, bool) or not isinstance(socket_timeout, int | float) \
            or not socket_timeout > 0:
        raise ValueError(f"socket_timeout must be a positive number of seconds, "
                         f"got {socket_timeout!r}")
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
            or max_in_flight < 1:
        raise ValueError(f"max_in_flight must be a whole number >= 1, got {max_in_flight!r}")
    url = url.strip()
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*_PLAIN, *_CLUSTER, *_SENTINEL):
        raise ValueError(
            f"redis url {_safe(url)!r} must start with redis://, rediss://, unix://, "
            "redis+cluster:// or redis+sentinel://")
    timeouts: dict[str, Any] = {"socket_timeout": socket_timeout,
                                "socket_connect_timeout": socket_timeout}
    if sentinel_master is not None and scheme not in _SENTINEL:
        raise ValueError(f"sentinel_master={sentinel_master!r} needs a redis+sentinel:// url, "
                         f"got {_safe(url)!r}")
    if scheme in _SENTINEL:
        if cluster:
            raise ValueError(f"{_safe(url)!r}: a sentinel url cannot also be a cluster "
                             "(Redis Cluster fails over by itself: use redis+cluster://)")
        return _sentinel_client(url, sentinel_master, timeouts)
    if scheme in _CLUSTER or cluster:
        return _cluster_client(url, timeouts, max_in_flight)
    return _plain_client(url, timeouts)


# -- one server ----------------------------------------------------------------------------


def _plain_client(url: str, timeouts: dict[str, Any]) -> Redis:
    if url.lower().startswith("unix://"):
        path = urlsplit(url).path
        if not path or path == "/":
            raise ValueError(f"{_safe(url)!r}: unix:// needs the socket path, "
                             "e.g. unix:///run/redis/redis.sock")
    else:
        parts = _split(url, default_port=6379)
        if len(parts.hosts) != 1:
            raise ValueError(
                f"{_safe(url)!r} names {len(parts.hosts)} hosts: use redis+cluster:// for a "
                "cluster or redis+sentinel:// for sentinels")
        _db(parts.path, url)
    try:
        return Redis.from_url(url, **timeouts)
    except (ValueError, TypeError) as exc:  # e.g. a bad ?option=
        raise ValueError(f"{_safe(url)!r}: {exc}") from None


# -- Redis Cluster -----------------------------------------------------------------------


def _cluster_client(url: str, timeouts: dict[str, Any], max_in_flight: int) -> RedisCluster:
    if url.lower().startswith("unix://"):
        raise ValueError(f"{_safe(url)!r}: Redis Cluster does not work over a Unix socket; "
                         "give host:port of one or more nodes")
    parts = _split(url, default_port=6379)
    if parts.query:
        raise ValueError(f"{_safe(url)!r}: options after '?' are not supported for a cluster")
    if _db(parts.path, url) != 0:
        raise ValueError(f"{_safe(url)!r}: Redis Cluster has only database 0")
    kwargs: dict[str, Any] = dict(timeouts)
    if parts.scheme in ("rediss", "rediss+cluster"):
        kwargs["ssl"] = True
    return GatedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parts.hosts],
        username=parts.username, password=parts.password, max_in_flight=max_in_flight,
        # a master down with no replica stops its slots only: other sites keep working
        # (with cluster-require-full-coverage no on the servers)
        require_full_coverage=False, **kwargs)


# -- Sentinel ------------------------------------------------------------------------------


def _sentinel_client(url: str, sentinel_master: str | None,
                     timeouts: dict[str, Any]) -> Redis:
    parts = _split(url, default_port=26379)
    if parts.query:
        raise ValueError(f"{_safe(url)!r}: options after '?' are not supported for sentinels")
    segments = [s for s in parts.path.split("/") if s]
    if sentinel_master is not None:
        if not _MASTER_RE.match(sentinel_master):
            raise ValueError(f"sentinel_master {sentinel_master!r} is not a valid master name")
        if segments and not segments[0].isdigit():
            if segments[0] != sentinel_master:
                raise ValueError(f"{_safe(url)!r} names master {segments[0]!r} but "
                                 f"sentinel_master is {sentinel_master!r}")
            segments = segments[1:]
        master = sentinel_master
    else:
        if not segments:
            raise ValueError(f"{_safe(url)!r}: name the master, "
                             "redis+sentinel://host:26379/MASTER[/db]")
        master, segments = segments[0], segments[1:]
        if not _MASTER_RE.match(master):
            raise ValueError(f"{_safe(url)!r}: {master!r} is not a valid master name")
    if len(segments) > 1:
        raise ValueError(f"{_safe(url)!r}: the path is /MASTER[/db], got {parts.path!r}")
    db = _db("/" + segments[0] if segments else "", url)
    sentinel = Sentinel(list(parts.hosts), **timeouts)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(
        master, redis_class=_SentinelMaster, db=db,
        username=parts.username, password=parts.password)
    return client


# -- parsing ------------------------------------------------------------------------------


def _split(url: str, *, default_port: int) -> _Parts:
    """scheme://[user[:pass]@]host[:port][,host[:port]...][/path][?query] (urlsplit cannot
    read several hosts)."""
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
        if not colon:  # redis://secret@host is a password, as redis-py reads it
            username, password = None, unquote(user) or None
    if not netloc:
        raise ValueError(f"{_safe(url)!r}: no host given")
    hosts = tuple(_host_port(h, default_port, url) for h in netloc.split(","))
    return _Parts(scheme.lower(), username, password, hosts, path, query)


def _host_port(text: str, default_port: int, url: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, bracket, tail = text[1:].partition("]")
        if not bracket or not host or (tail and not tail.startswith(":")):
            raise ValueError(f"{_safe(url)!r}: bad IPv6 address {text!r}")
        port_text = tail[1:] if tail else ""
    else:
        host, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise ValueError(f"{_safe(url)!r}: empty port after {host!r}")
        if not host or not _HOST_RE.match(host):
            raise ValueError(f"{_safe(url)!r}: bad host {text!r}"
                             + (" (an empty entry between commas?)" if not host else ""))
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{_safe(url)!r}: port {port_text!r} of {host!r} is not 1-65535")
    return host, int(port_text)


def _db(path: str, url: str) -> int:
    db_text = path.strip("/")
    if not db_text:
        return 0
    if not db_text.isdigit():
        raise ValueError(f"{_safe(url)!r}: the path must be a database number, got {path!r}")
    return int(db_text)


def _safe(url: str) -> str:
    """The url with any password hidden, for error messages that reach logs."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    if sep and "@" in netloc:
        return f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{tail}"
    return url
