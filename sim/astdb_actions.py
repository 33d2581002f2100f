"""AMI DBGet, DBPut and DBDel with the frames of main/db.c (manager_dbget/put/del, Asterisk
22): DBGet answers a one-item event list (`Result will follow`, DBGetResponse, DBGetComplete)
or `Database entry not found`. Registered by importing this module (sim/actions.py does)."""

from __future__ import annotations

from sim.actions import ActionCall, action


def _family_key(call: ActionCall, end: str = ".") -> tuple[str, str] | None:
    """Family and Key, or None after answering the error Asterisk gives (DBPut's
    messages have no final dot, DBGet's and DBDel's have one)."""
    family = call.msg.get("Family") or ""
    key = call.msg.get("Key") or ""
    if not family:
        call.error(f"No family specified{end}")
        return None
    if not key:
        call.error(f"No key specified{end}")
        return None
    return family, key


@action("DBGet")
async def db_get(call: ActionCall) -> None:
    names = _family_key(call)
    if names is None:
        return
    family, key = names
    value = call.session.sim.world.astdb.get(family, key)
    if value is None:
        call.error("Database entry not found")
        return
    call.list_start("Result will follow")
    # astman_append: no Privilege, ActionID last (unlike astman_send_list_complete_start)
    aid = [("ActionID", call.action_id)] if call.action_id is not None else []
    call.session.send([("Event", "DBGetResponse"), ("Family", family), ("Key", key),
                       ("Val", value), *aid])
    call.list_complete("DBGetComplete", 1)


@action("DBPut")
async def db_put(call: ActionCall) -> None:
    names = _family_key(call, end="")
    if names is None:
        return
    family, key = names
    call.session.sim.world.astdb.put(family, key, call.msg.get("Val") or "")
    call.success("Updated database successfully")


@action("DBDel")
async def db_del(call: ActionCall) -> None:
    names = _family_key(call)
    if names is None:
        return
    family, key = names
    if not call.session.sim.world.astdb.delete(family, key):
        call.error("Database entry not found")
        return
    call.success("Key deleted successfully")
