"""The emulated fleet's HTTP face: Prometheus scrape targets over aiohttp.

Routes (all ``GET``):

* ``/metrics``: every replica in one exposition, each series with ``namespace``, ``workload`` and
  ``pod="<workload>-<i>"`` labels: the labels Kubernetes service discovery would attach. One
  ``static_configs`` target is a whole fleet; this is what the integration test scrapes.
* ``/replica/{i}/metrics``: replica ``i`` alone, byte-for-byte what one engine pod serves (no
  extra labels).
* ``/targets``: the per-replica targets in Prometheus' ``http_sd_configs`` format, each with
  ``__metrics_path__`` and the pod labels, for a scrape that looks like one target per pod.
* ``/dcgm/metrics``: dcgm-exporter's framebuffer gauges for every replica's GPUs, labelled with
  the ``namespace`` and ``pod`` holding them but no ``workload`` (a separate scrape target, as
  the exporter's DaemonSet is in a cluster).
* ``/epp/metrics`` (with a gateway only): the fleet's endpoint picker, with ``namespace`` and
  ``inference_pool="<pool>"`` on every series (what the EPP PodMonitor's relabeling adds).

Every scrape is answered in the classic text format, version 0.0.4 (see :func:`_exposition`).

The emulator is advanced in two places, both through :func:`sim_time` of one clock: a background
task (``cleanup_ctx``) every ``interval_s``, so work is done incrementally, and each scrape, so a
scrape always shows the state at the moment it is served. Tests inject ``clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import CollectorRegistry

from autoscaler.emulation.exposition import ENGINES
from autoscaler.emulation.side_exporters import DcgmCollector, EppCollector
from autoscaler.emulation.stepper import Emulator, ReplicaSample
from autoscaler.errors import InputError

__all__ = [
    "EMULATOR",
    "SETTINGS",
    "EmulatorSettings",
    "SimClock",
    "create_app",
    "labels_for",
]


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """How the emulated fleet presents itself."""

    engine: str = "vllm"
    model_name: str = "llama2-70b"
    workload: str = "default/llm"
    """``namespace/name`` of the emulated workload (labels of the fleet-wide ``/metrics``)."""
    speed: float = 1.0
    """Simulated seconds per wall-clock second."""
    interval_s: float = 0.2
    """Wall-clock period of the background advance."""
    created_unix: float | None = None
    """Value of the ``_created`` series (vLLM shows them); None omits them."""
    pool: str = "llm-pool"
    """The InferencePool's name on the endpoint picker's series (with a gateway)."""

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}; known: {', '.join(sorted(ENGINES))}")
        if not self.speed > 0:
            raise InputError(f"speed must be > 0, got {self.speed}")
        if not self.interval_s > 0:
            raise InputError(f"interval must be > 0, got {self.interval_s}")
        ns, sep, name = self.workload.partition("/")
        if not sep or not ns or not name or "/" in name:
            raise InputError(f"workload must be NAMESPACE/NAME, got {self.workload!r}")

    @property
    def namespace(self) -> str:
        return self.workload.partition("/")[0]

    @property
    def workload_name(self) -> str:
        return self.workload.partition("/")[2]


class SimClock:
    """Maps a monotonic wall clock to simulated time: ``(wall - start) * speed``."""

    def __init__(self, speed: float, clock: Callable[[], float]) -> None:
        self.speed = speed
        self.clock = clock
        self.start = clock()

    def sim_time(self) -> float:
        return (self.clock() - self.start) * self.speed


EMULATOR = web.AppKey("emulator", Emulator)
SETTINGS = web.AppKey("emulator_settings", EmulatorSettings)
SIM_CLOCK = web.AppKey("sim_clock", SimClock)


def labels_for(settings: EmulatorSettings, index: int) -> dict[str, str]:
    """The Kubernetes labels of replica ``index`` (pod names as a StatefulSet would have)."""
    return {
        "namespace": settings.namespace,
        "workload": settings.workload_name,
        "pod": f"{settings.workload_name}-{index}",
    }


def _registry(
    settings: EmulatorSettings,
    source: Callable[[], Sequence[tuple[dict[str, str], ReplicaSample]]],
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        ENGINES[settings.engine](
            source, model_name=settings.model_name, created_unix=settings.created_unix
        )
    )
    return registry


def create_app(
    emulator: Emulator,
    settings: EmulatorSettings | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> web.Application:
    """The emulator's aiohttp application (routes in the module docstring).

    ``clock`` is the wall clock in seconds (default: the event loop's monotonic clock, read when
    the app starts); simulated time is ``(clock() - clock at start) * settings.speed``.
    """
    settings = settings or EmulatorSettings()
    app = web.Application()
    app[EMULATOR] = emulator
    app[SETTINGS] = settings

    def fleet_rows() -> list[tuple[dict[str, str], ReplicaSample]]:
        return [(labels_for(settings, s.index), s) for s in emulator.samples()]

    def replica_rows(i: int) -> Callable[[], list[tuple[dict[str, str], ReplicaSample]]]:
        return lambda: [({}, emulator.sample(i))]

    fleet_registry = _registry(settings, fleet_rows)
    replica_registries = [_registry(settings, replica_rows(i)) for i in range(emulator.replicas)]
    dcgm_registry = CollectorRegistry(auto_describe=False)
    dcgm_registry.register(
        DcgmCollector(fleet_rows, engine=settings.engine, gpus=emulator.profile.tp)
    )

    def catch_up(request: web.Request) -> None:
        emulator.advance_to(request.app[SIM_CLOCK].sim_time())

    async def fleet_metrics(request: web.Request) -> web.StreamResponse:
        catch_up(request)
        return _exposition(fleet_registry)

    async def dcgm_metrics(request: web.Request) -> web.StreamResponse:
        catch_up(request)
        return _exposition(dcgm_registry)

    async def replica_metrics(request: web.Request) -> web.StreamResponse:
        text = request.match_info["index"]
        if not text.isdigit() or int(text) >= emulator.replicas:
            raise web.HTTPNotFound(
                text=f"no replica {text}; replicas are 0..{emulator.replicas - 1}"
            )
        catch_up(request)
        return _exposition(replica_registries[int(text)])

    async def targets(request: web.Request) -> web.Response:
        host = request.host
        groups = [
            {
                "targets": [host],
                "labels": {"__metrics_path__": f"/replica/{i}/metrics", **labels_for(settings, i)},
            }
            for i in range(emulator.replicas)
        ]
        return web.json_response(groups)

    app.router.add_get("/metrics", fleet_metrics)
    app.router.add_get("/replica/{index}/metrics", replica_metrics)
    app.router.add_get("/targets", targets)
    app.router.add_get("/dcgm/metrics", dcgm_metrics)

    if emulator.gateway is not None:
        epp_registry = CollectorRegistry(auto_describe=False)
        epp_registry.register(
            EppCollector(
                emulator.gateway_sample,
                emulator.samples,
                model_name=settings.model_name,
                pool=settings.pool,
                flow_control=emulator.gateway.flow_control,
                labels={"namespace": settings.namespace},
            )
        )

        async def epp_metrics(request: web.Request) -> web.StreamResponse:
            catch_up(request)
            return _exposition(epp_registry)

        app.router.add_get("/epp/metrics", epp_metrics)

    @contextlib.asynccontextmanager
    async def advancing(app: web.Application) -> AsyncIterator[None]:
        read = clock or asyncio.get_running_loop().time
        app[SIM_CLOCK] = SimClock(settings.speed, read)
        task = asyncio.create_task(_advance_forever(app, settings.interval_s))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(advancing)
    return app


def _exposition(registry: CollectorRegistry) -> web.Response:
    """The classic text format (0.0.4), whatever the scraper's Accept header says.

    Not ``make_aiohttp_handler``: it negotiates OpenMetrics when asked (Prometheus 3 asks), and
    prometheus-client 0.26's OpenMetrics writer turns ``vllm:`` into ``vllm_`` in sample names
    while keeping ``vllm:`` in ``# TYPE`` (its own parser then rejects two label sets:
    "Clashing name"). The classic format keeps vLLM's names as the collector queries them.

    prometheus-client writes every counter's ``# HELP``/``# TYPE`` lines as ``<name>_total``;
    TGI's and Triton's counters have no ``_total`` (:func:`_counter_headers`).
    """
    return web.Response(
        body=_counter_headers(generate_latest(registry)),
        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
    )


def _counter_headers(text: bytes) -> bytes:
    """``# HELP``/``# TYPE`` of a counter named as its samples are: ``x`` when they are ``x``.

    A counter whose samples end in ``_total`` (vLLM) is left as it is."""
    lines = text.split(b"\n")
    for i, line in enumerate(lines):
        if not (line.startswith(b"# TYPE ") and line.endswith(b"_total counter")):
            continue
        name = line.split(b" ")[2]
        bare = name[: -len(b"_total")]
        sample = next((s for s in lines[i + 1 :] if not s.startswith(b"#")), b"")
        if sample.startswith(name):
            continue
        lines[i] = line.replace(name, bare, 1)
        if i > 0 and lines[i - 1].startswith(b"# HELP " + name + b" "):
            lines[i - 1] = lines[i - 1].replace(name, bare, 1)
    return b"\n".join(lines)


async def _advance_forever(app: web.Application, interval_s: float) -> None:
    """The only loop: advance to the clock's time, sleep, repeat."""
    emulator = app[EMULATOR]
    sim = app[SIM_CLOCK]
    while True:
        emulator.advance_to(sim.sim_time())
        await asyncio.sleep(interval_s)
