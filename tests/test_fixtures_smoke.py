"""The real servers the suite relies on actually start and answer."""

import aiomqtt
import redis.asyncio as aioredis

from tests.support.servers import MosquittoServer


async def test_redis_answers(redis_client: aioredis.Redis) -> None:
    await redis_client.set("k", "v")
    assert await redis_client.get("k") == b"v"


async def test_mosquitto_round_trip(mosquitto_proc: MosquittoServer) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as sub:
        await sub.subscribe("callgate/test/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as pub:
            await pub.publish("callgate/test/x", b"hello", qos=1)
        async for msg in sub.messages:
            assert msg.payload == b"hello"
            break
