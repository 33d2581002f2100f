"""A session opened under the gateway's limits lease id: one CALLGATE_LEASE names both."""

from __future__ import annotations

import pytest

from prepaid.errors import BadInput
from prepaid.rating import PlanSettings
from prepaid.sessions import AuthorizeRequest
from tests.prepaid.conftest import FLAT_CSV, Prepaid


async def test_session_id_carries_the_lease_and_is_found_from_it(pp: Prepaid) -> None:
    await pp.plan("std", FLAT_CSV, PlanSettings("EUR"))
    card, _ = await pp.card(500)
    lease = "0123456789abcdef"
    auth = await pp.sessions.authorize(
        AuthorizeRequest(card, "442071234567", "c1", "100", lease=lease))
    assert auth.allowed and auth.session_id == f"{card}~{lease}"
    assert await pp.sessions.session_for_lease(lease) == auth.session_id
    assert await pp.sessions.session_for_lease("fedcba9876543210") is None
    assert await pp.sessions.session_for_lease("not a lease") is None


async def test_refused_card_leaves_no_lease_pointer(pp: Prepaid) -> None:
    await pp.plan("std", FLAT_CSV, PlanSettings("EUR"))
    card, _ = await pp.card(0)
    lease = "00112233445566aa"
    auth = await pp.sessions.authorize(AuthorizeRequest(card, "4420", "c2", lease=lease))
    assert (auth.allowed, auth.reason) == (False, "no_credit")
    assert await pp.sessions.session_for_lease(lease) is None


async def test_a_lease_id_that_is_not_hex_is_refused(pp: Prepaid) -> None:
    await pp.plan("std", FLAT_CSV, PlanSettings("EUR"))
    card, _ = await pp.card(500)
    with pytest.raises(BadInput):
        await pp.sessions.authorize(AuthorizeRequest(card, "4420", "c3", lease="x~y"))
