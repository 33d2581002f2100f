"""The pacing in a simulated call centre (deterministic seed): behaviour, not timing."""

from __future__ import annotations

from dialer.campaign import Campaign, DialMode
from dialer.simulation import CallCentre, SupervisorChange, simulate

CENTRE = CallCentre(agents=20, answer_rate=0.3)


def campaign(mode: DialMode, abandon_target: float = 0.03) -> Campaign:
    return Campaign("acme", "sim", mode=mode, agent_queue="sales", max_channels=80,
                    max_cps=10.0, abandon_target=abandon_target)


def test_predictive_holds_the_abandon_target_and_beats_progressive() -> None:
    predictive = simulate(campaign(DialMode.PREDICTIVE), CENTRE, duration_s=1800, seed=11)
    progressive = simulate(campaign(DialMode.PROGRESSIVE), CENTRE, duration_s=1800, seed=11)
    assert predictive.live_answers > 200
    assert predictive.abandon_rate <= 0.03 + 0.015
    assert progressive.abandoned == 0
    assert predictive.occupancy > progressive.occupancy + 0.1
    assert predictive.talk_min_per_agent_hour > 1.2 * progressive.talk_min_per_agent_hour
    # The engine's own count agrees with what really happened in the simulated centre.
    assert predictive.engine_abandon_rate == predictive.abandon_rate


def test_lowering_the_target_mid_run_lowers_abandons_after_the_change() -> None:
    r = simulate(campaign(DialMode.PREDICTIVE, abandon_target=0.05), CENTRE,
                 duration_s=3600, seed=5,
                 changes=[SupervisorChange.of(1800, abandon_target=0.005)],
                 period_edges=[1800])
    before, after = r.periods
    assert after.abandon_rate < before.abandon_rate
    assert after.abandon_rate <= 0.005 + 0.01
