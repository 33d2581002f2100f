"""Pacing decisions: progressive, predictive, caps and the abandon-rate feedback."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from dialer.agents import AgentState
from dialer.campaign import Campaign, DialMode
from dialer.estimates import CallEstimates
from dialer.pacing import BusyAgent, PacingInput, PredictivePacer, progressive

CAMPAIGN = Campaign("acme", "c1", mode=DialMode.PREDICTIVE, max_ratio=3.0, max_channels=100,
                    max_cps=100.0)


def trained(answer_rate: float, n: int = 400) -> CallEstimates:
    est = CallEstimates()
    live_every = round(1 / answer_rate)
    for i in range(n):
        if i % live_every == 0:
            est.observe_live(8.0 + i % 10)
        else:
            est.observe_not_live(3.0 + (i * 7) % 28)
        est.observe_talk(40.0 + (i * 13) % 100)
    return est


def inp(ready: int, *, talking: int = 0, ringing: int = 0, waiting: int = 0,
        calls_up: int | None = None, tokens: float = 100.0) -> PacingInput:
    busy = [BusyAgent(AgentState.TALKING, 30.0, 10.0) for _ in range(talking)]
    return PacingInput(
        ready_agents=ready, staffed_agents=ready + talking, busy_agents=busy,
        ringing_call_ages=[5.0] * ringing, waiting_calls=waiting,
        calls_up=calls_up if calls_up is not None else ringing + waiting + talking,
        cps_tokens=tokens)


@given(ready=st.integers(0, 50), talking=st.integers(0, 50), ringing=st.integers(0, 60),
       waiting=st.integers(0, 5), tokens=st.floats(0, 20), channels=st.integers(1, 200))
def test_progressive_never_has_more_calls_in_flight_than_ready_agents(
        ready: int, talking: int, ringing: int, waiting: int, tokens: float,
        channels: int) -> None:
    c = replace(CAMPAIGN, mode=DialMode.PROGRESSIVE, max_channels=channels)
    d = progressive(inp(ready, talking=talking, ringing=ringing, waiting=waiting,
                        tokens=tokens), c)
    assert d.place >= 0
    assert d.place == 0 or ringing + waiting + d.place <= ready


def test_progressive_places_one_call_per_free_ready_agent() -> None:
    c = replace(CAMPAIGN, mode=DialMode.PROGRESSIVE)
    assert progressive(inp(5, ringing=2), c).place == 3
    assert progressive(inp(5, ringing=5), c).place == 0


def test_predictive_dials_ahead_of_ready_agents_at_low_answer_rates() -> None:
    d = PredictivePacer().decide(inp(10), trained(0.1), CAMPAIGN, 0.0)
    assert d.place > 10  # more calls than ready agents: most will not be answered


def test_predictive_respects_max_ratio() -> None:
    c = replace(CAMPAIGN, max_ratio=2.0)
    est = trained(0.05)
    d = PredictivePacer().decide(inp(10, ringing=4), est, c, 0.0)
    assert 4 + d.place <= 20
    assert d.limited_by == "max_ratio"


def test_predictive_respects_trunk_channels_and_cps() -> None:
    est = trained(0.05)
    d = PredictivePacer().decide(inp(10, calls_up=95), est, CAMPAIGN, 0.0)
    assert d.place == 5 and d.limited_by == "channels"
    d = PredictivePacer().decide(inp(10, tokens=3.5), est, CAMPAIGN, 0.0)
    assert d.place == 3 and d.limited_by == "cps"


def test_predictive_holds_off_when_no_agent_can_take_a_call() -> None:
    d = PredictivePacer().decide(inp(0, talking=10), trained(0.3), CAMPAIGN, 0.0)
    assert d.place <= 1
    d = PredictivePacer().decide(inp(0), trained(0.3), CAMPAIGN, 0.0)
    assert d.place == 0


def test_abandons_make_the_pacer_more_careful_and_connects_bolder() -> None:
    est = trained(0.2)
    snapshot = inp(6, talking=14, ringing=10)
    pacer = PredictivePacer()
    start = pacer.decide(snapshot, est, CAMPAIGN, 0.0).place
    for _ in range(10):
        pacer.observe_live_answer(True, 0.024)
    careful = pacer.decide(snapshot, est, CAMPAIGN, 0.0).place
    bold_pacer = PredictivePacer()
    for _ in range(300):
        bold_pacer.observe_live_answer(False, 0.024)
    bold = bold_pacer.decide(snapshot, est, CAMPAIGN, 0.0).place
    assert careful < start < bold


def test_a_lower_abandon_target_dials_less_at_once() -> None:
    est = trained(0.2)
    snapshot = inp(6, talking=14, ringing=10)
    pacer = PredictivePacer()
    at_3 = pacer.decide(snapshot, est, CAMPAIGN, 0.0).place
    at_1 = pacer.decide(snapshot, est, replace(CAMPAIGN, abandon_target=0.01), 0.0).place
    assert at_1 < at_3


def test_window_over_target_tightens_the_setpoint() -> None:
    pacer = PredictivePacer()
    assert pacer.setpoint(0.03, 0.03) > pacer.setpoint(0.03, 0.04) >= pacer.setpoint(0.03, 0.2)


def test_headroom_below_the_target_is_a_few_calls_not_a_share() -> None:
    # A young window keeps 15 % of the budget back; one holding a day's calls only 3 %,
    # so a 24 h window is not left a third of a point short all day.
    pacer = PredictivePacer()
    young, four_hours, day = (pacer.setpoint(0.03, 0.025, n) for n in (300, 2500, 15000))
    assert young == 0.85 * 0.03
    assert young < four_hours < day == 0.97 * 0.03
    assert pacer.setpoint(0.03, 0.025) == young  # nothing counted yet
    more = pacer.decide(inp(6, talking=14, ringing=10), trained(0.2), CAMPAIGN, 0.025, 15000)
    less = pacer.decide(inp(6, talking=14, ringing=10), trained(0.2), CAMPAIGN, 0.025, 300)
    assert more.alpha > less.alpha


def test_a_few_lucky_minutes_barely_move_the_answer_rate() -> None:
    est = CallEstimates()
    for i in range(1500):  # 30 % answered
        (est.observe_live if i % 10 < 3 else est.observe_not_live)(10.0)
    for i in range(300):  # then about eight minutes at 60 %
        (est.observe_live if i % 10 < 6 else est.observe_not_live)(10.0)
    # Over the last 1500 dials: 36 %; the last 400 alone would say 52 %.
    assert 0.34 < est.answer_rate < 0.38
