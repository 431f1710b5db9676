"""The forwarders as the running collector runs them: a process of their own (started and watched
by the ingest worker), with one event loop, a store connection and a broker connection for the
Results. A process, not a thread of the worker: at 100 reads/s the insurance checks and the HIS
registrations take about as much CPU as the ingest itself, and in one process they shared one
interpreter lock (``bench counter`` measured the worker at 100 % of a core and missed the latency
goals); apart, they run on two cores. What the metrics need from the forwarders (BHXH alerts,
the circuits' states) goes to the worker over a pipe as small events (``MetricEvents``).

Results are published at QoS 1 and the job is recorded as done only once the broker has
acknowledged the Result: if the broker is away the job stays queued and its answer is sent again.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiomqtt

from collector.amqp import AmqpResultPublisher
from collector.config import CollectorConfig
from collector.db import open_db
from collector.forward import his, jobs
from collector.forward.answer import Answers, PublishError
from collector.forward.bhxh import BhxhClient, Officer
from collector.forward.breaker import CLOSED, CircuitBreaker
from collector.forward.registration import RegistrationRunner
from collector.forward.runner import InsuranceRunner
from collector.keystore import Keystore, load_kek
from collector.registry import Registry

log = logging.getLogger("cccd.collector.forward")

IDLE = 0.05  # seconds between looks at the job queue, unless an attempt ended before
GATHER = 0.005  # after an attempt ended, this long for others to end too: one look for them all
PUBLISH_TIMEOUT = 10.0


def result_publisher(cfg: CollectorConfig) -> "ResultPublisher | AmqpResultPublisher":
    """The Results' way out: MQTT to Mosquitto, or AMQP to a RabbitMQ cluster."""
    if cfg.broker.transport == "amqp":
        return AmqpResultPublisher(cfg.broker, PUBLISH_TIMEOUT)
    return ResultPublisher(cfg)


class ResultPublisher:
    """A broker connection of the collector's account that only publishes Results, in the
    forwarders' event loop (aiomqtt: paho's MQTT without paho's network thread).

    ``publish`` is a coroutine that returns once the broker's PUBACK arrived; many Results are in
    flight at once. The connection is opened on the first Result and again after a failure. (A
    paho thread resolving the futures did the same, but it competed with the event loop for the
    interpreter lock: a fifth of the forwarders' CPU in py-spy under ``bench nodered``.)
    """

    def __init__(self, cfg: CollectorConfig, timeout: float = PUBLISH_TIMEOUT) -> None:
        self.settings = cfg.broker
        self.timeout = timeout
        self._client: aiomqtt.Client | None = None
        self._opening: asyncio.Future[aiomqtt.Client] | None = None

    async def _open(self) -> aiomqtt.Client:
        s = self.settings
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username or None,
            password=s.password or None,
            identifier=s.client_id + "-results",
            clean_session=True,
            keepalive=30,
            timeout=self.timeout,
            max_inflight_messages=100,
            logger=_QUIET,  # aiomqtt warns of every pending publish past ten: hundreds are normal here
            tls_context=ssl.create_default_context(cafile=s.ca or None) if s.tls else None,
        )
        await client.__aenter__()
        return client

    async def _connected(self) -> aiomqtt.Client:
        """The connection, opened once however many Results wait for it. (Opening again whenever
        the last opening had finished but no waiter had taken its client yet made a second
        connection under the same client id, and the broker closed the first with its Results in
        flight: 10 s stalls under load, found in ``bench nodered``.)"""
        if self._client is not None:
            return self._client
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.wait_for(asyncio.shield(self._opening), self.timeout)

    def _opened(self, future: "asyncio.Future[aiomqtt.Client]") -> None:
        if self._opening is future:
            self._opening = None
        if not future.cancelled() and future.exception() is None:  # (an error is the waiters')
            self._client = future.result()

    async def _drop(self, client: aiomqtt.Client | None) -> None:
        if client is None or self._client is not client:
            return
        self._client = None
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)

    async def publish(self, topic: str, payload: bytes) -> None:
        client = None
        try:
            client = await self._connected()
            await client.publish(topic, payload, qos=1, timeout=self.timeout)
        except (aiomqtt.MqttError, TimeoutError, OSError):
            await self._drop(client)
            raise PublishError("the broker did not acknowledge a Result") from None

    async def aclose(self) -> None:
        await self._drop(self._client)


_QUIET = logging.getLogger("cccd.collector.forward.results")
_QUIET.setLevel(logging.ERROR)


class NewWork:
    """The ingest worker's word to the forwarders that it stored reads: a byte down a pipe, so
    that their checks start at once instead of at their next look (up to ``IDLE`` later). The
    worker never waits on it: when the pipe is full the forwarders have words enough unread, and
    when they are gone ``ForwarderProcess.check`` starts them again."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        os.set_blocking(conn.fileno(), False)

    def tell(self) -> None:
        with contextlib.suppress(OSError):  # full (BlockingIOError), or the reader is gone
            os.write(self.conn.fileno(), b"\0")

    def close(self) -> None:
        self.conn.close()


def listen(conn: multiprocessing.connection.Connection, heard: Callable[[], None]) -> Callable[[], None]:
    """Call ``heard`` from the running event loop whenever ``NewWork.tell`` wrote to ``conn``'s
    other end (once for all the words waiting); returns the function that stops listening. The
    writer closing ends it too."""
    loop = asyncio.get_running_loop()
    fd = conn.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            words = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            words = b""
        if not words:  # the worker closed its end
            loop.remove_reader(fd)
            return
        heard()

    def stop() -> None:
        loop.remove_reader(fd)

    loop.add_reader(fd, readable)
    return stop


class ForwarderStartError(Exception):
    """The forwarders' process ended before it was running (a setting, the store, the key)."""


class ForwarderMetrics(Protocol):
    def alert(self, code: str) -> None: ...

    def circuit(self, destination: str, state: str) -> None: ...


class MetricEvents:
    """The forwarders' side of the metrics: each event sent to the worker, which applies it."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn

    def alert(self, code: str) -> None:
        self._send(("alert", code))

    def circuit(self, destination: str, state: str) -> None:
        self._send(("circuit", destination, state))

    def ready(self) -> None:
        self._send(("ready",))

    def _send(self, event: tuple[str, ...]) -> None:
        with contextlib.suppress(OSError, ValueError):  # the worker is gone: so are its metrics
            self.conn.send(event)


class ForwarderProcess:
    """Starts the forwarders' process; ``apply_events`` hands their metric events to ``metrics``;
    ``check`` starts them again if they died."""

    def __init__(self, cfg: CollectorConfig, metrics: ForwarderMetrics) -> None:
        assert cfg.bhxh is not None or cfg.his is not None
        self.cfg = cfg
        self.metrics = metrics
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = self._ctx.Event()
        self._proc: Any = None
        self._events: multiprocessing.connection.Connection | None = None
        self.starts = 0
        self._new_work: NewWork | None = None

    def start(self, wait: float = 60.0) -> "ForwarderProcess":
        """Start the process and, with ``wait``, return once its forwarders are running (the
        collector subscribes only then: a read's "pending" must not wait for Python to start)."""
        events, child = self._ctx.Pipe(duplex=False)
        told, teller = self._ctx.Pipe(duplex=False)
        self._proc = self._ctx.Process(
            target=_forwarders_main,
            args=(self.cfg, child, self._stopping, told),
            name="cccd-forwarders",
            daemon=True,
        )
        self._proc.start()
        child.close()
        told.close()
        if self._new_work is not None:
            self._new_work.close()  # the pipe of a process that died
        self._new_work = NewWork(teller)
        self._events = events
        self.starts += 1
        deadline = time.monotonic() + wait
        while wait and not self._apply(until_ready=True):
            if time.monotonic() > deadline or not self._proc.is_alive():
                code = self._proc.exitcode
                self.stop()  # never leave a half-started process behind
                raise ForwarderStartError(f"the forwarders did not start (exit code {code})")
            events.poll(0.1)
        return self

    def apply_events(self) -> None:
        self._apply()

    def _apply(self, until_ready: bool = False) -> bool:
        """Apply the events waiting in the pipe; True when one of them was ("ready",) (then, with
        ``until_ready``, the rest stay for later)."""
        events = self._events
        if events is None:
            return False
        with contextlib.suppress(EOFError, OSError):
            while events.poll():
                kind, *rest = events.recv()
                if kind == "alert":
                    self.metrics.alert(rest[0])
                elif kind == "circuit":
                    self.metrics.circuit(rest[0], rest[1])
                elif kind == "ready" and until_ready:
                    return True
        return False

    def check(self) -> None:
        """Start the forwarders again if their process died (its jobs wait in the store)."""
        self.apply_events()
        if self._proc is not None and not self._proc.is_alive() and not self._stopping.is_set():
            log.error("the forwarders stopped (exit code %s): starting them again", self._proc.exitcode)
            self.start(wait=0)

    def new_work(self) -> None:
        """Reads were stored: their checks are due now."""
        if self._new_work is not None:
            self._new_work.tell()

    def stop(self) -> None:
        self._stopping.set()
        if self._proc is not None:
            self._proc.join(timeout=15)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self.apply_events()
        if self._events is not None:
            self._events.close()
        if self._new_work is not None:
            self._new_work.close()


def _forwarders_main(
    cfg: CollectorConfig,
    events: multiprocessing.connection.Connection,
    stopping: Any,
    told: multiprocessing.connection.Connection | None = None,
) -> None:
    # The worker decides when to stop: a Ctrl-C to the whole group must not end a check mid-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM (the worker's exit, or a service manager's to the group): stop after this round
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sink = MetricEvents(events)
        Forwarders(cfg, sink, stopping, on_ready=sink.ready, told=told).run()
    finally:
        events.close()


async def _next_round(ended: asyncio.Event) -> None:
    """Wait for the forwarders' next look at the jobs: ``IDLE`` seconds, or less when an attempt
    ends first (its slot is free at once, not up to ``IDLE`` later; ``bench nodered``)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ended.wait(), IDLE)
        await asyncio.sleep(GATHER)
    ended.clear()


class Forwarders:
    """The insurance checks (when [bhxh] is set) and the HIS registrations (when [his] is set),
    until ``stopping`` is set."""

    def __init__(
        self,
        cfg: CollectorConfig,
        metrics: ForwarderMetrics | None,
        stopping: Any,
        on_ready: Callable[[], None] | None = None,
        told: multiprocessing.connection.Connection | None = None,
    ) -> None:
        self.cfg = cfg
        self.told = told  # NewWork's pipe from the ingest worker
        self.metrics = metrics
        self.stopping = stopping
        self.on_ready = on_ready

    def run(self) -> None:
        asyncio.run(self._main())

    def _breaker(self, name: str, failures: int, cooldown: float) -> CircuitBreaker:
        m = self.metrics
        on_change = None
        if m is not None:
            m.circuit(name, CLOSED)
            on_change = m.circuit
        return CircuitBreaker(name, failures, cooldown, on_change=on_change)

    async def _main(self) -> None:
        cfg, b, h = self.cfg, self.cfg.bhxh, self.cfg.his
        db = open_db(cfg.store.url, durable=False)  # job updates: see open_db
        released = jobs.release_leases(db, time.time())
        if released:
            log.info("%d jobs taken before a restart are due again", released)
        keystore = Keystore(load_kek(cfg.store.kek_file))
        closers: list[Callable[[], Awaitable[None]]] = []
        runners: list[InsuranceRunner | RegistrationRunner] = []
        ended = asyncio.Event()  # an attempt ended: a slot is free, or a registration is due
        stored = False  # the worker stored reads since the checks' last look

        def heard() -> None:
            nonlocal stored
            stored = True
            ended.set()

        stop_listening = listen(self.told, heard) if self.told is not None else None
        publisher = None
        try:
            if b is not None:
                publisher = result_publisher(cfg)
                client = BhxhClient(
                    b.url, b.username, b.password, timeout=b.timeout, connections=b.concurrency
                )
                closers.append(client.aclose)
                answers = Answers(db, Registry(db, keystore), publisher.publish)
                runners.append(
                    InsuranceRunner(
                        db,
                        keystore,
                        client,
                        Officer(b.officer_name, b.officer_cccd),
                        answers,
                        concurrency=b.concurrency,
                        pending_after=b.pending_after,
                        max_age=b.dead_after_hours * 3600,
                        on_alert=self.metrics.alert if self.metrics is not None else None,
                        register=h is not None,
                        breaker=self._breaker("bhxh", b.breaker_failures, b.breaker_cooldown),
                        on_done=ended.set,
                    )
                )
            if h is not None:
                connector = his.connect(h)
                closers.append(connector.aclose)
                runners.append(
                    RegistrationRunner(
                        db,
                        keystore,
                        connector,
                        concurrency=h.concurrency,
                        max_age=h.dead_after_hours * 3600,
                        breaker=self._breaker(connector.name, h.breaker_failures, h.breaker_cooldown),
                        on_done=ended.set,
                    )
                )
            if self.on_ready is not None:
                self.on_ready()
            parent = os.getppid()
            checked = 0.0  # time.monotonic() of the checks' last look
            while not self.stopping.is_set() and os.getppid() == parent:  # orphaned: the worker died
                for runner in runners:
                    # a registration slot is filled as soon as it is free; the checks look when the
                    # worker says it stored reads, else every IDLE (for those due again). Not at every
                    # ended check: their slots hardly ever run out, and a look is a write to the store
                    if isinstance(runner, InsuranceRunner):
                        now = time.monotonic()
                        if not stored and now - checked < IDLE:
                            continue
                        checked, stored = now, False
                    try:
                        runner.dispatch()
                    except Exception as exc:  # the store is away: try again soon
                        log.warning("forwarding paused: %s", exc)
                        await asyncio.sleep(1.0)
                await _next_round(ended)
        finally:
            if stop_listening is not None:
                stop_listening()
            for close in closers:
                await close()
            if publisher is not None:
                await publisher.aclose()
            db.close()
