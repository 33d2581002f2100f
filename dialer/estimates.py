"""What the pacer has learnt from recent calls.

Empirical distributions over the last few hundred calls rather than fitted curves: talk
times are far from exponential in practice (many short calls, a long tail), and the
pacer needs conditional probabilities such as "this agent has talked for 140 s; will
they be free within the next 15 s?", which an empirical survival function answers
directly. Until enough calls have been seen, priors stand in (exponential shapes, and a
modest answer rate that makes the first minutes cautious).

The survival functions are tabulated per second and rebuilt every few observations, so
a pacing tick costs table look-ups, not sorting.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


class RecentSamples:
    """The last `size` observations, kept sorted."""

    def __init__(self, size: int) -> None:
        self._fifo: deque[float] = deque()
        self.sorted: list[float] = []
        self._size = size
        self._sum = 0.0

    def add(self, x: float) -> None:
        self._fifo.append(x)
        bisect.insort(self.sorted, x)
        self._sum += x
        if len(self._fifo) > self._size:
            old = self._fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
            self._sum -= old

    def __len__(self) -> int:
        return len(self._fifo)

    @property
    def mean(self) -> float:
        return self._sum / len(self._fifo) if self._fifo else 0.0


class Survival:
    """P(X > x) tabulated at whole seconds 0..len-1, linearly interpolated between."""

    def __init__(self, table: Sequence[float]) -> None:
        self._t = list(table)
        self._last = len(self._t) - 1

    @classmethod
    def empirical(cls, ordered: Sequence[float], horizon_s: int) -> Survival:
        # Smoothed (k + 0.5) / (n + 1) so it never reaches 0 inside the horizon.
        n = len(ordered)
        table: list[float] = []
        i = 0
        for x in range(horizon_s + 1):
            while i < n and ordered[i] <= x:
                i += 1
            table.append((n - i + 0.5) / (n + 1.0))
        return cls(table)

    @classmethod
    def exponential(cls, mean_s: float, horizon_s: int) -> Survival:
        return cls([math.exp(-x / mean_s) for x in range(horizon_s + 1)])

    def __call__(self, x: float) -> float:
        if x <= 0:
            return self._t[0] if x == 0 else 1.0
        if x >= self._last:
            return self._t[self._last]
        i = int(x)
        lo = self._t[i]
        return lo + (self._t[i + 1] - lo) * (x - i)


@dataclass(frozen=True)
class EstimatePriors:
    answer_rate: float = 0.5
    answer_rate_weight: float = 20.0  # pseudo-dials behind the prior
    talk_s: float = 120.0
    answer_delay_s: float = 15.0
    not_live_s: float = 20.0
    min_samples: int = 30


_DIAL_HORIZON_S = 120  # longest ring we tabulate
_TALK_HORIZON_S = 4 * 3600
_REBUILD_EVERY = 20  # observations


class CallEstimates:
    """Answer rate, time to answer, time to fail and talk time of recent calls."""

    def __init__(self, memory: int = 400, priors: EstimatePriors | None = None, *,
                 outcome_memory: int = 1500) -> None:
        self.priors = priors or EstimatePriors()
        self._outcomes: deque[bool] = deque()
        # The answer rate gets a longer memory than the time distributions: at 30 %,
        # 400 dials give it +/- 2.3 points of noise (8 % of the demand the pacer expects
        # from new calls, for minutes at a time); 1500 dials (about 40 minutes of a
        # 20-agent campaign) give +/- 1.2 and still follow a drifting list.
        self._memory = outcome_memory
        self._live = 0
        self.answer_delays = RecentSamples(memory)  # dial -> live answer
        self.not_live_durations = RecentSamples(memory)  # dial -> end, calls never live
        self.talk_times = RecentSamples(memory)
        self._dirty = [True, True, True]
        self._since_rebuild = [0, 0, 0]
        self._live_surv = Survival([1.0])
        self._other_surv = Survival([1.0])
        self._talk_surv = Survival([1.0])

    # -- observations --------------------------------------------------------------

    def observe_live(self, answer_delay_s: float) -> None:
        self._outcome(True)
        self.answer_delays.add(max(0.0, answer_delay_s))
        self._touch(0)

    def observe_not_live(self, duration_s: float) -> None:
        self._outcome(False)
        self.not_live_durations.add(max(0.0, duration_s))
        self._touch(1)

    def observe_talk(self, talk_s: float) -> None:
        self.talk_times.add(max(0.0, talk_s))
        self._touch(2)

    def _outcome(self, live: bool) -> None:
        self._outcomes.append(live)
        self._live += live
        if len(self._outcomes) > self._memory:
            self._live -= self._outcomes.popleft()

    def _touch(self, which: int) -> None:
        self._since_rebuild[which] += 1
        n = (len(self.answer_delays), len(self.not_live_durations), len(self.talk_times))[which]
        if self._since_rebuild[which] >= _REBUILD_EVERY or n <= self.priors.min_samples:
            self._dirty[which] = True

    # -- estimates -----------------------------------------------------------------

    @property
    def answer_rate(self) -> float:
        """Share of dials answered by a live person (machines and no-answers excluded)."""
        w = self.priors.answer_rate_weight
        return (self._live + w * self.priors.answer_rate) / (len(self._outcomes) + w)

    @property
    def mean_answer_delay(self) -> float:
        if len(self.answer_delays) < self.priors.min_samples:
            return self.priors.answer_delay_s
        return self.answer_delays.mean

    @property
    def mean_talk(self) -> float:
        if len(self.talk_times) < self.priors.min_samples:
            return self.priors.talk_s
        return self.talk_times.mean

    def _table(self, which: int) -> Survival:
        if self._dirty[which]:
            self._dirty[which] = False
            self._since_rebuild[which] = 0
            samples, prior, horizon = (
                (self.answer_delays, self.priors.answer_delay_s, _DIAL_HORIZON_S),
                (self.not_live_durations, self.priors.not_live_s, _DIAL_HORIZON_S),
                (self.talk_times, self.priors.talk_s, _TALK_HORIZON_S),
            )[which]
            table = (Survival.exponential(prior, horizon)
                     if len(samples) < self.priors.min_samples
                     else Survival.empirical(samples.sorted, horizon))
            if which == 0:
                self._live_surv = table
            elif which == 1:
                self._other_surv = table
            else:
                self._talk_surv = table
        return (self._live_surv, self._other_surv, self._talk_surv)[which]

    @property
    def live_survival(self) -> Survival:
        """P(time from dial to live answer > x), among calls answered live."""
        return self._table(0)

    @property
    def not_live_survival(self) -> Survival:
        """P(time from dial to end > x), among calls never answered live."""
        return self._table(1)

    @property
    def talk_survival(self) -> Survival:
        return self._table(2)

    def live_probability(self, age_s: float) -> float:
        """P(a call still ringing after age_s will be answered by a person).

        Bayes over the two populations still ringing at that age:
        p S_L(a) / (p S_L(a) + (1 - p) S_N(a)).
        """
        p = self.answer_rate
        alive_live = p * self.live_survival(age_s)
        alive = alive_live + (1.0 - p) * self.not_live_survival(age_s)
        return alive_live / alive if alive > 0 else 0.0

    def live_within(self, age_s: float, within_s: float) -> float:
        """P(a call ringing for age_s is answered live within the next within_s seconds).

        Bayes over the two populations still ringing at that age:
        p (S_L(a) - S_L(a + w)) / (p S_L(a) + (1 - p) S_N(a)).
        """
        p = self.answer_rate
        s_live = self.live_survival
        alive_live = p * s_live(age_s)
        alive = alive_live + (1.0 - p) * self.not_live_survival(age_s)
        if alive <= 0:
            return 0.0
        return p * (s_live(age_s) - s_live(age_s + within_s)) / alive

    def p_talk_ends_within(self, elapsed_s: float, within_s: float) -> float:
        """P(talk ends within the next within_s seconds | it has lasted elapsed_s)."""
        if within_s <= 0:
            return 0.0
        s = self.talk_survival
        s_now = s(elapsed_s)
        if s_now <= 0:
            return 1.0
        return max(0.0, min(1.0, (s_now - s(elapsed_s + within_s)) / s_now))
