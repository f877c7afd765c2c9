"""The dramatiq broker, built from ``[queue] broker`` before any actor exists.

dramatiq's ``@actor`` decorator binds an actor to whatever broker is global when the module is
imported, so importing actors before the broker is configured silently sends jobs to a default
one. Here nothing binds at import: `build_broker` makes the broker from the settings (and makes
it dramatiq's global one), and `worker.jobs.actors.declare` then creates the actors on exactly
that broker. A process may build several (each test, each `leadmail dispatch --once`).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, ShutdownNotifications, TimeLimit

from worker.config import QueueSettings


def is_memory(settings: QueueSettings) -> bool:
    return settings.broker == "memory"


def build_broker(settings: QueueSettings) -> dramatiq.Broker:
    """``memory`` → StubBroker (worked by an in-process Worker); ``redis://…`` → RedisBroker."""
    broker: dramatiq.Broker
    if is_memory(settings):
        # fail_fast off: an actor error is logged and counted by the actor itself; join()
        # must still return so `dispatch --once` can report it.
        broker = StubBroker(middleware=middleware(), fail_fast_default=False)
    else:
        broker = RedisBroker(url=settings.broker, middleware=middleware())  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    return broker


def middleware() -> list[Middleware]:
    """Only what our actors use: a time limit as a backstop, and shutdown notices.

    dramatiq's defaults add retries, age limits, callbacks and pipelines; retries and due
    times live in the database here (services/delivery.py), and every message runs through
    each middleware's hooks, which is measurable at thousands of mails a minute.
    """
    return [TimeLimit(), ShutdownNotifications()]


def describe(settings: QueueSettings) -> str:
    """The broker for messages: a Redis URL without its password."""
    if is_memory(settings):
        return "memory"
    parts = urlsplit(settings.broker)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
