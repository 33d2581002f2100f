"""What an unanswered dialer call's AMI trail says happened: busy, no answer or failed.

Sources, strongest first: a `DialStatus` of the call's DialEnd events (BUSY beats
CONGESTION/CHANUNAVAIL beats NOANSWER/CANCEL, since an Originate's own DialEnd says
NOANSWER whatever the far end did), the Q.850 cause the channel table chose for the call,
then the OriginateResponse `Reason` (3 ring timeout, 5 busy, 8 congestion).
"""

from __future__ import annotations

from collections.abc import Iterable

from dialer.leads import Outcome

# OriginateResponse Reason values (AST_CONTROL_*).
REASON_HANGUP = 1
REASON_RING_TIMEOUT = 3
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8

_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({18, 19})
_FAILED_CAUSES = frozenset({1, 3, 21, 22, 27, 28, 34, 38, 41, 42, 44, 47, 58, 88, 102, 127})


def failure_outcome(dial_statuses: Iterable[str], cause: int | None,
                    originate_reason: int | None) -> Outcome:
    statuses = {s.upper() for s in dial_statuses}
    if "BUSY" in statuses or cause in _BUSY_CAUSES or originate_reason == REASON_BUSY:
        return Outcome.BUSY
    if (statuses & {"CONGESTION", "CHANUNAVAIL"} or cause in _FAILED_CAUSES
            or originate_reason == REASON_CONGESTION):
        return Outcome.FAILED
    if (statuses & {"NOANSWER", "CANCEL"} or cause in _NO_ANSWER_CAUSES
            or originate_reason in (REASON_RING_TIMEOUT, REASON_HANGUP)):
        return Outcome.NO_ANSWER
    return Outcome.FAILED
