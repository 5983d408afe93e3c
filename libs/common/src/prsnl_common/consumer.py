"""The failure policy of every worker subscriber, written once.

A stage handler is a plain ``async def handle(event, job) -> None``. This
module subscribes it to the stage's quorum queue and states what happens on
failure, so each subscriber does not improvise it:

* success → ack (after the handler's own output events were confirmed);
* :class:`~prsnl_common.errors.PermanentError` → publish ``item.failed`` and ack;
* :class:`~prsnl_common.errors.TransientError` or an unexpected exception →
  republish through the retry exchange to the back-off tier of this attempt,
  ack, and announce ``retry.scheduled`` (attempt, of how many, when, why);
  after ``max_attempts`` publish ``item.failed`` (retryable) and reject,
  which dead-letters the message to the stage's DLQ;
* a body that does not validate → reject to the DLQ at once (poison);
* cancellation (shutdown past the grace period) → nothing is acked; the
  broker redelivers to another replica.
"""

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from prsnl_common.broker import ATTEMPT_HEADER, TIER_HEADER, EventPublisher, Topology
from prsnl_common.deletions import Deletions, deletions_of
from prsnl_common.errors import PermanentError, PipelineError, TransientError
from prsnl_common.events import Event, ItemFailed, RetryScheduled, Stage, utcnow
from prsnl_common.metrics import DEAD_LETTERS, JOBS_IN_FLIGHT, RETRIES_SCHEDULED

E = TypeVar("E", bound=Event)
logger = logging.getLogger(__name__)


@dataclass
class Job(Generic[E]):
    """What a handler knows about the delivery it is working on."""

    event: E
    attempt: int
    max_attempts: int
    publish: Callable[[Event], Awaitable[None]]

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[E, Job[E]], Awaitable[None]]


def subscribe_stage(
    broker: RabbitBroker,
    topology: Topology,
    *,
    service: str,
    stage: Stage,
    event_type: type[E],
    handler: Handler[E],
    concurrency: int = 1,
    discard_on_failure: Callable[[E], list[str]] | None = None,
    report_failures: bool = True,
    stop_on_delete: bool = False,
) -> None:
    """Bind ``handler`` to ``<ns>.<service>.<event>`` under the policy above.

    ``discard_on_failure`` names the stored inputs that become useless when the
    item fails here (the downloaded original when processing gives up); they
    travel in ``item.failed`` so the catalog can hand them to the janitor.
    ``report_failures=False`` gives up without publishing ``item.failed`` (for
    the subscriber of ``item.failed`` itself, which must not feed its own queue).
    ``stop_on_delete`` cancels a job whose item is deleted meanwhile and drops
    later deliveries for it (see :mod:`prsnl_common.deletions`).
    """
    if stop_on_delete:
        handler = _stoppable(handler, deletions_of(broker, topology, service))

    def failed(event: E, error: PipelineError, attempt: int) -> ItemFailed:
        discard = discard_on_failure(event) if discard_on_failure else []
        return failure_event(event, stage, error, attempt, discard)

    publisher = EventPublisher(broker, topology)
    queue = topology.stage_queue(service, event_type)
    max_attempts = topology.settings.max_attempts

    async def announce(notice: RetryScheduled) -> None:
        """Tell the catalog the item waits; the retry is already queued, so never fail here."""
        if not report_failures:
            return
        try:
            await publisher.publish(notice)
        except Exception:
            logger.warning("could not announce the retry", exc_info=True)

    async def on_event(body: Any, message: RabbitMessage) -> None:
        event: E = body
        headers = message.headers or {}
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        job = Job(event, attempt, max_attempts, publisher.publish)
        log = {"item_id": str(event.item_id), "attempt": attempt, "stage": stage}
        try:
            with JOBS_IN_FLIGHT.labels(stage).track_inprogress():
                await handler(event, job)
        except ItemGone:
            logger.info("the item was deleted; its work stopped", extra=log)
            await message.ack()
        except PermanentError as error:
            logger.warning("permanent failure %s: %s", error.code, error.message, extra=log)
            if report_failures:
                await publisher.publish(failed(event, error, attempt))
            await message.ack()
        except asyncio.CancelledError:
            # Shutdown: leave the message unacknowledged; it is redelivered.
            raise
        except Exception as exc:
            failure = (
                exc
                if isinstance(exc, PipelineError)
                else TransientError("internal_error", f"{type(exc).__name__}: {exc}")
            )
            if not isinstance(exc, PipelineError):
                logger.exception("unexpected error", extra=log)
            if attempt < max_attempts:
                tier = topology.retry_tier(attempt)
                logger.info(
                    "transient failure %s, retry %d via %s",
                    failure.code,
                    attempt + 1,
                    tier,
                    extra=log,
                )
                await broker.publish(
                    message.body,
                    exchange=topology.retry,
                    routing_key=queue.name,
                    headers={**headers, ATTEMPT_HEADER: attempt + 1, TIER_HEADER: tier},
                    persist=True,
                    mandatory=True,
                    content_type=message.content_type,
                    message_id=message.message_id,
                )
                await message.ack()
                RETRIES_SCHEDULED.labels(stage, failure.code).inc()
                delay = topology.retry_delay(attempt)
                await announce(retry_notice(event, stage, failure, attempt, max_attempts, delay))
            else:
                logger.error("giving up after %d attempts: %s", attempt, failure.code, extra=log)
                if report_failures:
                    await publisher.publish(failed(event, failure, attempt))
                await message.reject(requeue=False)
                DEAD_LETTERS.labels(stage, failure.code).inc()
        else:
            await message.ack()

    # FastStream validates the body against the handler's annotation.
    on_event.__annotations__["body"] = event_type
    on_event.__name__ = f"on_{event_type.routing_key.replace('.', '_')}"
    broker.subscriber(
        queue,
        topology.events,
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        channel=Channel(prefetch_count=concurrency, on_return_raises=True),
    )(on_event)


class ItemGone(Exception):
    """The item was deleted: the job stopped (or never started) and nothing is reported."""


def _stoppable(handler: Handler[E], deletions: Deletions) -> Handler[E]:
    async def run(event: E, job: Job[E]) -> None:
        if deletions.is_deleted(event.item_id):
            raise ItemGone
        try:
            with deletions.job(event.item_id):
                await handler(event, job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not deletions.is_deleted(event.item_id) or task is None:
                raise
            task.uncancel()  # our own cancellation: the delivery goes on to be acknowledged
            raise ItemGone from None

    return run


def failure_event(
    event: Event, stage: Stage, error: PipelineError, attempt: int, discard: list[str]
) -> ItemFailed:
    """The ``item.failed`` a stage publishes when it gives up on ``event``."""
    return ItemFailed(
        item_id=event.item_id,
        run=event.run,
        stage=stage,
        error_code=error.code,
        message=error.message,
        attempts=attempt,
        retryable=error.retryable,
        profile=getattr(event, "profile", None),
        discard_keys=discard,
    )


def retry_notice(
    event: Event, stage: Stage, error: PipelineError, attempt: int, max_attempts: int, delay: float
) -> RetryScheduled:
    """The ``retry.scheduled`` a stage publishes when it queued another attempt."""
    return RetryScheduled(
        item_id=event.item_id,
        run=event.run,
        stage=stage,
        error_code=error.code,
        message=error.message,
        attempt=attempt,
        max_attempts=max_attempts,
        next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
        profile=getattr(event, "profile", None),
    )
