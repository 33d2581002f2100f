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
- A pipeline without a transaction may mix slots: it is split per node and the parts are
  sent to their nodes at once, so it is neither atomic nor ordered across slots ("write
  the index first, then the record" holds only when both share a slot). Scripts may be
  queued in pipelines (see ScriptingClusterPipeline). `pipeline(transaction=True)`
  (MULTI/EXEC) and WATCH need every key in one slot.
- Multi-key commands (MGET, SUNIONSTORE, RENAME, SMOVE, ...) need one slot too.
- `SCAN`/`KEYS`, `FLUSHALL`, `DBSIZE`, `INFO` are per node: redis-py's `scan_iter` walks
  every primary, but a cursor from one node means nothing on another. Prefer an index key
  (a set of ids) over scanning.
- Only db 0 exists; there is no `SELECT`, and no Unix socket.
- Pub/sub is broadcast cluster-wide (fine, but costly); streams are single keys.
- Replication is asynchronous: a write acknowledged by a master that dies before its
  replica got it is lost in the failover (WAIT narrows that window). A script's effects
  travel as one unit, so a lost acquire or debit is lost whole, never half.
- During a failover a few commands fail (ConnectionError, ClusterDownError, TryAgain):
  they are RedisError, so the configured `redis_down_policy` applies. (redis-py raises
  RedisClusterException, not a RedisError, when no node answers at all; the client made
  here turns that into a ConnectionError, see GatedRedisCluster.)
- Run the servers with `cluster-require-full-coverage no`: a master down with no replica
  then stops only the sites and cards whose slots it holds; the client is built to match
  (`require_full_coverage=False`).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, SlotNotCoveredError

RedisClient = Redis | RedisCluster

_PLAIN = ("redis", "rediss", "unix")
_CLUSTER = ("redis+cluster", "rediss+cluster")
_SENTINEL = ("redis+sentinel",)
_MASTER_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


class ScriptingClusterPipeline(ClusterPipeline):
    """A cluster pipeline that runs Lua scripts, as a single server's pipeline does.

    - redis-py blocks EVALSHA in a cluster pipeline, although it routes it by its keys like
      any keyed command (and allows EVAL). Allowed here: each script goes to the node of
      its keys; a script whose keys span slots still raises RedisClusterException.
    - A node that restarted or was promoted has no scripts. A script registered on the
      client that comes back NOSCRIPT is loaded (on every primary) and that command alone
      is sent again: it did not run, so it runs once. In a MULTI/EXEC pipeline the scripts
      are made sure of before it is sent instead.
    - Awaiting a redis-py cluster pipeline empties it, and a script object given
      `client=pipe` awaits what it queues, so only the last script of a batch was sent.
      Awaiting one here only makes sure the layout is known.
    """

    def __init__(self, client: GatedRedisCluster, transaction: bool | None = None) -> None:
        super().__init__(client, transaction)
        self._gated = client
        self._queued: list[tuple[Any, ...]] = []

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self._queued.append(args)
        return super().execute_command(*args, **kwargs)

    def __await__(self) -> Generator[Any, None, ClusterPipeline]:
        return self._ready().__await__()

    async def _ready(self) -> ClusterPipeline:
        if self.cluster_client._initialize:
            await self.cluster_client.initialize()
        return self

    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        queued, self._queued = self._queued, []
        known = self._gated.scripts_by_sha
        shas = {str(c[1]) for c in queued if _is_evalsha(c) and str(c[1]) in known}
        if self._transaction:
            if shas:
                await self._gated.ensure_scripts(shas)
            return list(await super().execute(raise_on_error, allow_redirections))
        results = list(await super().execute(False, allow_redirections))
        redo = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)
                and i < len(queued) and _is_evalsha(queued[i]) and str(queued[i][1]) in shas]
        if redo and len(results) == len(queued):
            for sha in {str(queued[i][1]) for i in redo}:
                await self._gated.script_load(known[sha])
            again = ClusterPipeline(self._gated, False)  # type: ignore[abstract]
            for i in redo:
                again.execute_command(*queued[i])
            for i, result in zip(redo, await again.execute(False), strict=True):
                results[i] = result
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


def _is_evalsha(args: tuple[Any, ...]) -> bool:
    return len(args) > 1 and str(args[0]).upper() == "EVALSHA"


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
    - Commands issued while the client does not know the layout yet are sent to an
      arbitrary node and redirected (MOVED); a burst of them right after start-up made
      redis-py 8 refresh the layout under its own feet and fail commands with
      AttributeError. The layout is learnt first, once, before any command is routed.
    - Pipelines may run Lua scripts (ScriptingClusterPipeline).
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
        self._learning = asyncio.Lock()
        self.scripts_by_sha: dict[str, Any] = {}

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        """Also remembered here, so a pipeline can load it on a node that lost it."""
        registered = super().register_script(script)
        self.scripts_by_sha[registered.sha] = registered.script
        return registered

    async def ensure_scripts(self, shas: set[str]) -> None:
        """Load the scripts of `shas` unless every primary has them."""
        ordered = sorted(shas)
        present = await self.script_exists(*ordered)
        for sha, ok in zip(ordered, present, strict=True):
            if not ok:
                await self.script_load(self.scripts_by_sha[sha])

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
        manager = self.nodes_manager  # a startup node and its cached twin are two objects
        nodes = [*manager.startup_nodes.values(), *manager.nodes_cache.values()]
        await asyncio.gather(*(node.disconnect() for node in nodes), return_exceptions=True)

    def pipeline(self, transaction: Any | None = None,
                 shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is not supported in cluster mode")
        return ScriptingClusterPipeline(self, transaction)  # type: ignore[abstract]

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            if self._initialize:
                async with self._learning:
                    if self._initialize:
                        await self.initialize()
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
    cluster's startup node. `max_in_flight`: commands one client runs at once, more wait
    their turn (a single server's connection pool size; see GatedRedisCluster). Call it
    in the thread that runs the event loop. Raises ValueError naming what is wrong with a
    bad url."""
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
    return _plain_client(url, timeouts, max_in_flight)


# -- one server ----------------------------------------------------------------------------


def _plain_client(url: str, timeouts: dict[str, Any], max_in_flight: int) -> Redis:
    """A blocking pool: a burst of calls waits (up to socket_timeout) for a connection
    instead of failing with "Too many connections", which would read as Redis down."""
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
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_in_flight, timeout=timeouts["socket_timeout"], **timeouts)
    except (ValueError, TypeError) as exc:  # e.g. a bad ?option=
        raise ValueError(f"{_safe(url)!r}: {exc}") from None
    return Redis(connection_pool=pool)


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
