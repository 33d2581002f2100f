"""The pyVoIP virtual desk phone against a real Asterisk (a lab PBX named by CALLGATE_LAB_*
variables, see tests/support/virtual_phone.py and README "Lab PBX tests").

Skipped, with the reason, when no lab is configured or it does not answer SIP OPTIONS.
The simulator never speaks SIP, so these are the only tests where a real chan_pjsip
sends the REGISTER events and the click-to-call INVITE with the auto-answer header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from ami import AmiClient, AmiSettings
from gateway.devices import DeviceRegistry
from gateway.devices.contact_lookup import ContactLookup, resync_from
from gateway.devices.dialing import ClickToCall
from hw_profiles import load_profiles
from tests.support.virtual_phone import LabPbx, VirtualDeskPhone


@pytest.fixture(scope="module")
def pbx() -> LabPbx:
    lab = LabPbx.from_env()
    if isinstance(lab, str):
        pytest.skip(lab)
    why = lab.unreachable()
    if why is not None:
        pytest.skip(why)
    return lab


@pytest.fixture
def phone(pbx: LabPbx) -> Iterator[VirtualDeskPhone]:
    with VirtualDeskPhone(pbx) as p:
        yield p


class _Link:
    def __init__(self, client: AmiClient) -> None:
        self.client = client


@pytest.fixture
async def registry(pbx: LabPbx) -> AsyncIterator[tuple[DeviceRegistry, _Link]]:
    """The gateway's device registry fed by the lab Asterisk's AMI, as the daemon wires it."""
    if not pbx.has_ami:
        pytest.skip("set CALLGATE_LAB_AMI=host:port, CALLGATE_LAB_AMI_USER and "
                    "CALLGATE_LAB_AMI_SECRET for the registry and click-to-call lab tests")
    client = AmiClient(AmiSettings(name="lab", host=pbx.ami_host, port=pbx.ami_port,
                                   username=pbx.ami_user, secret=pbx.ami_secret))
    devices = DeviceRegistry(load_profiles())
    client.subscribe("*", devices.handle_event)
    client.start()
    link = _Link(client)
    lookup = ContactLookup(devices, {"lab": link})
    try:
        await client.wait_ready(10)
        await resync_from(client, devices)
        lookup.start()
        yield devices, link
    finally:
        await lookup.close()
        await client.close()


async def _until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


async def test_virtual_phone_registers_and_the_registry_sees_its_user_agent(
        pbx: LabPbx, registry: tuple[DeviceRegistry, _Link]) -> None:
    devices, _ = registry
    with VirtualDeskPhone(pbx):
        await _until(lambda: (d := devices.device(pbx.user)) is not None and d.registered
                     and (d.user_agent or "").startswith("pyVoIP"))
        snap = devices.device(pbx.user)
        assert snap is not None and snap.profile.name == "default"  # an unknown model
    await _until(lambda: not (d := devices.device(pbx.user)) or not d.registered)


async def test_virtual_phone_places_a_call_that_is_answered(
        pbx: LabPbx, phone: VirtualDeskPhone) -> None:
    if not pbx.dest:
        pytest.skip("set CALLGATE_LAB_DEST to an extension that answers (e.g. Echo())")
    call = await asyncio.to_thread(phone.call, pbx.dest)
    await asyncio.to_thread(call.hangup)


async def test_click_to_call_rings_the_virtual_phone_with_an_auto_answer_header(
        pbx: LabPbx, phone: VirtualDeskPhone,
        registry: tuple[DeviceRegistry, _Link]) -> None:
    if not pbx.dest:
        pytest.skip("set CALLGATE_LAB_DEST to an extension that answers (e.g. Echo())")
    devices, link = registry
    await _until(lambda: (d := devices.device(pbx.user)) is not None and d.registered)
    placed = await ClickToCall(devices, {"lab": link}).place(
        tenant="lab", device=pbx.user, dest=pbx.dest, context=pbx.context)
    incoming = await asyncio.to_thread(phone.wait_incoming)
    for name, value in placed.headers:  # the default profile's headers, as sent
        assert incoming.header(name) == value, incoming.headers
    assert incoming.answered.is_set()
    await asyncio.to_thread(incoming.call.hangup)


async def test_virtual_phone_leaves_no_contact_behind_after_a_call(
        pbx: LabPbx, registry: tuple[DeviceRegistry, _Link]) -> None:
    """A call whose ACK Asterisk cannot match leaves 200 OK retransmissions queued, and
    pyVoIP's deregister then takes one for its answer: the phone would stay registered."""
    if not pbx.dest:
        pytest.skip("set CALLGATE_LAB_DEST to an extension that answers (e.g. Echo())")
    devices, _ = registry
    with VirtualDeskPhone(pbx) as phone:
        await _until(lambda: (d := devices.device(pbx.user)) is not None and d.registered)
        call = await asyncio.to_thread(phone.call, pbx.dest)
        await asyncio.sleep(2.0)  # long enough for Asterisk to retransmit an unACKed 200 OK
        await asyncio.to_thread(call.hangup)
    await _until(lambda: not (d := devices.device(pbx.user)) or not d.registered)
