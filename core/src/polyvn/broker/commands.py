"""Sending commands to engines and waiting for their replies: :func:`open_command_client`.

A command goes out on :func:`~polyvn.names.commands_channel` of its engine and the answer
comes back on :func:`~polyvn.names.replies_channel`, matched by the command id. The client
subscribes to every replies channel before it sends anything, so no reply can overtake it.

``PUBLISH`` says how many subscribers received the command: none means no engine with that
id is listening (it is down, or reconnecting to Redis), and :meth:`CommandClient.send_command`
raises :class:`~polyvn.broker.errors.EngineUnreachableError` at once instead of waiting.
Otherwise it waits for the reply; callers bound the wait (``trio.fail_after``). After a
timeout, sending the same command again (same id) is safe: an engine applies a command id at
most once and answers a repeat with its first reply.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

import trio

from polyvn.broker._redis import RedisClient, open_subscription, redact
from polyvn.broker.envelopes import decode, encode
from polyvn.broker.errors import (
    BrokerUnavailableError,
    EngineUnreachableError,
    InvalidEnvelopeError,
    Problem,
)
from polyvn.models import Command, CommandReply
from polyvn.names import PUBSUB_MAX_BYTES, REPLIES_CHANNEL_GLOB, commands_channel

log = logging.getLogger(__name__)

RETRY_DELAY: Final = 0.5


class CommandClient:
    """Made by :func:`open_command_client`."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._waiting: dict[str, tuple[trio.Event, list[CommandReply]]] = {}
        self.invalid_replies = 0

    async def send_command(self, command: Command) -> CommandReply:
        """Send *command* to its engine and wait for the reply (callers set the timeout).

        :raises EngineUnreachableError: no engine listens on the command's channel.
        :raises BrokerUnavailableError: Redis cannot be reached.
        :raises InvalidEnvelopeError: the command is larger than a Pub/Sub message may be.
        """
        data = encode(command)
        if len(data) > PUBSUB_MAX_BYTES:
            raise InvalidEnvelopeError(
                f"command {command.id} of {len(data)} bytes is over the limit of "
                f"{PUBSUB_MAX_BYTES}",
                Problem.OVERSIZED,
            )
        done, slot = self._waiting.setdefault(command.id, (trio.Event(), []))
        try:
            channel = commands_channel(engine_id=command.engine_id)
            receivers = await self._client.execute("PUBLISH", channel, data)
            if not receivers:
                raise EngineUnreachableError(f"no engine {command.engine_id} listens on {channel}")
            await done.wait()
            return slot[0]
        finally:
            if self._waiting.get(command.id, (None,))[0] is done:
                del self._waiting[command.id]

    def _dispatch(self, data: bytes) -> None:
        try:
            reply = decode(data, CommandReply)
        except InvalidEnvelopeError as exc:
            self.invalid_replies += 1
            log.warning("refused a payload on a replies channel (%s): %s", exc.problem.value, exc)
            return
        waiting = self._waiting.get(reply.command_id)
        if waiting is not None and not waiting[0].is_set():
            waiting[1].append(reply)
            waiting[0].set()

    async def _listen(
        self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        while True:
            try:
                async with open_subscription(
                    url, name="polyvn-commands:replies", patterns=[REPLIES_CHANNEL_GLOB]
                ) as subscription:
                    if not started:
                        started = True
                        task_status.started()
                    while True:
                        self._dispatch((await subscription.receive()).data)
            except BrokerUnavailableError as exc:
                if not started:
                    raise
                log.warning("replies subscription to %s lost (%s); again", redact(url), exc)
                await trio.sleep(RETRY_DELAY)


@contextlib.asynccontextmanager
async def open_command_client(redis_url: str) -> AsyncIterator[CommandClient]:
    """A :class:`CommandClient`, subscribed to the replies before it returns.
    BrokerUnavailableError when Redis cannot be reached now."""
    client = RedisClient(redis_url, name="polyvn-commands")
    try:
        commands = CommandClient(client)
        async with trio.open_nursery() as nursery:
            await nursery.start(commands._listen, redis_url)
            try:
                yield commands
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await client.aclose()


__all__ = ["CommandClient", "open_command_client"]
