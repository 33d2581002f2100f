"""Concurrency enforcement through the simulator: decisions, and counters that heal.

Every counter must equal the number of live calls holding it (DESIGN invariant 1) after
each fault: the daemon killed with calls up, the AMI socket dropped while calls end,
Redis restarted.
"""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import Stack

STAY_UP = "150"  # the simulated far end answers and stays up (sim-callee 1XX)


async def test_outbound_limit_refuses_third_call_and_passes_emergency(stack: Stack) -> None:
    await stack.limits.settings.set_tenant_limit("acme", "outbound", 2)
    await stack.start_daemon()
    calls = [stack.place(STAY_UP) for _ in range(3)]
    decisions = await asyncio.gather(*(stack.decided(c) for c in calls))
    summary = sorted((d["CALLGATE_RESULT"], d["CALLGATE_REASON"], d["CALLGATE_CAUSE"])
                     for d in decisions)
    assert summary == [("ALLOW", "ok", "0"), ("ALLOW", "ok", "0"),
                       ("DENY", "tenant_limit", "34")]
    denied = calls[[d["CALLGATE_RESULT"] for d in decisions].index("DENY")]
    async with asyncio.timeout(10):
        await denied.ended.wait()  # the dialplan hung it up with cause 34

    emergency = stack.place("112")
    d = await stack.decided(emergency)
    assert (d["CALLGATE_RESULT"], d["CALLGATE_REASON"]) == ("ALLOW", "emergency")
    assert await stack.in_use("tenant_outbound", "acme") == 3  # counted, may exceed

    # Hang-ups release the slots (AMI Hangup and the h-extension release, once).
    live = [c for c in calls if c is not denied] + [emergency]
    for call in live:
        stack.hang_up(call)
    await stack.wait_in_use({("tenant_outbound", "acme"): 0, ("trunk", "e1-1"): 0}, 10)


async def test_kill9_with_100_calls_up_then_30_end_while_down(stack: Stack) -> None:
    await stack.start_daemon()
    calls = [stack.place(STAY_UP) for _ in range(100)]
    decisions = await asyncio.gather(*(stack.decided(c, 30) for c in calls))
    assert all(d["CALLGATE_RESULT"] == "ALLOW" for d in decisions)
    await stack.wait_in_use({("tenant_outbound", "acme"): 100, ("trunk", "e1-1"): 100}, 10)

    await stack.kill_daemon()
    for call in calls[:30]:
        stack.hang_up(call)
    await asyncio.sleep(1.0)  # the hang-ups happen while no gateway is listening
    # Nothing could release them: the counters still say 100.
    assert await stack.in_use("tenant_outbound", "acme") == 100

    await stack.start_daemon()
    took = await stack.wait_in_use(
        {("tenant_outbound", "acme"): 70, ("trunk", "e1-1"): 70}, 5.0
    )
    assert took < 5.0
    events = stack.daemon.log_events() if stack.daemon else []
    fixed = [e for e in events if e["event"] == "reconcile_fixed"]
    assert fixed and len(fixed[0]["freed"]) == 30, "the log must say what was fixed"

    for call in calls[30:]:
        stack.hang_up(call)
    await stack.wait_in_use({("tenant_outbound", "acme"): 0, ("trunk", "e1-1"): 0}, 10)


async def test_ami_socket_dropped_while_calls_end(stack: Stack) -> None:
    await stack.start_daemon()
    calls = [stack.place(STAY_UP) for _ in range(40)]
    await asyncio.gather(*(stack.decided(c, 20) for c in calls))
    await stack.wait_in_use({("tenant_outbound", "acme"): 40}, 10)

    port = stack.sim.ami_port
    await stack.sim.ami.stop()  # the AMI socket drops; Asterisk keeps running calls
    for call in calls[:20]:
        stack.hang_up(call)
    await asyncio.sleep(0.5)
    stack.sim.ami.port = port
    await stack.sim.ami.start()
    # The h-extension release already freed most of them; the reconcile after the new
    # login must leave exactly the live calls counted, and the channel table exact.
    await stack.wait_in_use({("tenant_outbound", "acme"): 20, ("trunk", "e1-1"): 20}, 5.0)
    assert stack.daemon is not None
    await asyncio.to_thread(stack.daemon.wait_ready, 10.0)
    body = await stack.live_calls()
    live = sorted(c["lease_id"] for c in body["calls"] if c["live"])
    assert live == sorted(c.var(c.g2, "CALLGATE_LEASE") for c in calls[20:]), (
        "the daemon's channel table must hold exactly the calls still up")
    assert len(body["calls"]) == 20 and body["unleased"] == []
    assert all(len(c["live"]["channels"]) == 3 for c in body["calls"])  # trunk + Local pair
    resyncs = [e for e in stack.daemon.log_events()
               if e["event"] in ("reconcile_clean", "reconcile_fixed")]
    assert len(resyncs) >= 2  # at start and after the reconnect


async def test_ami_drop_without_release_hook_is_healed_by_reconcile(stack: Stack) -> None:
    """Calls whose dialplan has no h-extension: only the AMI Hangup or the reconcile
    after reconnect can free their slots; with AMI down, the reconcile must."""
    ctx = stack.sim.dialplan.config.contexts["callgate-out"]
    stack.sim.dialplan.config.contexts["callgate-out"] = type(ctx)(
        ctx.name, ctx.style, ctx.agi, ctx.dial_timeout, ctx.callee_context, None
    )
    await stack.start_daemon()
    calls = [stack.place(STAY_UP) for _ in range(20)]
    await asyncio.gather(*(stack.decided(c, 20) for c in calls))
    await stack.wait_in_use({("tenant_outbound", "acme"): 20}, 10)
    port = stack.sim.ami_port
    await stack.sim.ami.stop()
    for call in calls[:12]:
        stack.hang_up(call)
    await asyncio.sleep(0.5)
    assert await stack.in_use("tenant_outbound", "acme") == 20
    stack.sim.ami.port = port
    await stack.sim.ami.start()
    await stack.wait_in_use({("tenant_outbound", "acme"): 8, ("trunk", "e1-1"): 8}, 5.0)


async def test_redis_restart_with_aof_keeps_counters_exact(
    stack: Stack, redis_for_stack: object
) -> None:
    from tests.support.servers import RedisServer

    assert isinstance(redis_for_stack, RedisServer)
    await stack.start_daemon()
    calls = [stack.place(STAY_UP) for _ in range(30)]
    await asyncio.gather(*(stack.decided(c, 20) for c in calls))
    await stack.wait_in_use({("tenant_outbound", "acme"): 30}, 10)

    redis_for_stack.stop(kill=True)
    for call in calls[:10]:
        stack.hang_up(call)  # releases hit a dead Redis: journaled by the gateway
    await asyncio.sleep(1.0)
    redis_for_stack.start()
    await stack.wait_in_use({("tenant_outbound", "acme"): 20, ("trunk", "e1-1"): 20}, 10.0)
    for call in calls[10:]:
        stack.hang_up(call)
    await stack.wait_in_use({("tenant_outbound", "acme"): 0, ("trunk", "e1-1"): 0}, 10.0)
