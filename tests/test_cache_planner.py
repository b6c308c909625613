"""The prefetch planner: properties over random clusters (hypothesis) and worked examples."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.inventory import (
    Inventory,
    NodeImage,
    NodeState,
    PodUsage,
    Taint,
    build_inventory,
    parse_image_ref,
)
from cache.placement import Placement, PreferredTerm, Requirement, SelectorTerm, Toleration
from cache.planner import (
    Demand,
    PlannerSettings,
    WorkloadShape,
    disk_room,
    node_pool,
    plan_prefetch,
)

IMAGE = parse_image_ref("registry.example.com/models/llama@sha256:" + "a" * 64)
OTHER = "docker.io/library/busybox:1.36"
GB = 10**9
TAINTS = (
    Taint("nvidia.com/gpu", "present", "NoSchedule"),
    Taint("dedicated", "batch", "NoExecute"),
    Taint("spot", "true", "PreferNoSchedule"),
)
POOL = "cloud.google.com/gke-nodepool"


def node(
    name: str,
    *,
    gpus: int = 8,
    used: int = 0,
    labels: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    ready: bool = True,
    cordoned: bool = False,
    disk_gb: float = 2000,
    images: tuple[tuple[str, float], ...] = (),
    complete: bool = True,
) -> NodeState:
    return NodeState(
        name=name,
        labels=labels or {},
        taints=taints,
        ready=ready,
        unschedulable=cordoned,
        gpus_allocatable=gpus,
        gpus_requested=used,
        images=tuple(NodeImage((n,), int(s * GB)) for n, s in images),
        images_complete=complete,
        disk_capacity_bytes=int(disk_gb * GB),
    )


def inventory(nodes: list[NodeState], pods: list[PodUsage] | tuple[()] = ()) -> Inventory:
    """Nodes with their ``gpus_requested`` turned into pods (what build_inventory folds)."""
    held = [PodUsage("other", f"hold-{n.name}", n.name, n.gpus_requested) for n in nodes]
    return build_inventory(nodes, [*held, *pods])


def shape(placement: Placement | None = None, size_gb: float | None = 140, gpr: int = 4):
    return WorkloadShape(
        placement or Placement(), gpr, IMAGE, None if size_gb is None else int(size_gb * GB)
    )


# -- strategies -------------------------------------------------------------------------------


def _rarely(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 9)) == 9  # hypothesis leans to 0: the common case


@st.composite
def nodes_st(draw: st.DrawFn) -> list[NodeState]:
    """Clusters where most nodes could take a replica, with every kind of exception mixed in."""
    count = draw(st.integers(0, 12))
    out = []
    for i in range(count):
        gpus = draw(st.sampled_from([8, 8, 8, 4, 0]))
        images: list[tuple[str, float]] = []
        if _rarely(draw):
            images.append((IMAGE.text, 140))
        images += [
            (f"{OTHER}-{k}", draw(st.floats(1, 900))) for k in range(draw(st.integers(0, 3)))
        ]
        out.append(
            node(
                f"n{i:02d}",
                gpus=gpus,
                used=draw(st.sampled_from([0, 0, 4, gpus])) if gpus else 0,
                labels={
                    POOL: draw(st.sampled_from(["a", "b", "c"])),
                    "gpu": draw(st.sampled_from(["h100", "h100", "a100"])),
                },
                taints=tuple(t for t in TAINTS if _rarely(draw)),
                ready=not _rarely(draw),
                cordoned=_rarely(draw),
                disk_gb=draw(st.sampled_from([4000.0, 4000.0, 1000.0, 500.0])),
                images=tuple(images),
                complete=not _rarely(draw),
            )
        )
    return out


placements = st.builds(
    Placement,
    node_selector=st.sampled_from([{}, {"gpu": "h100"}]),
    tolerations=st.lists(
        st.sampled_from(
            [
                Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"),
                Toleration("dedicated", "Equal", "batch", ""),
                Toleration("spot", "Exists"),
            ]
        ),
        max_size=3,
    ).map(tuple),
)
planner_settings = st.builds(
    PlannerSettings,
    max_warm_nodes=st.integers(0, 5),
    max_concurrent_per_pool=st.integers(1, 3),
    spare_replicas=st.integers(0, 3),
)


@st.composite
def cases(draw: st.DrawFn):
    nodes = draw(nodes_st())
    names = [n.name for n in nodes]
    pulling = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    on_node = {n: draw(st.integers(1, 2)) for n in names if draw(st.integers(0, 3)) == 0}
    demand = Demand(draw(st.integers(0, 30)), draw(st.integers(0, 20)))
    return nodes, pulling, on_node, demand, draw(placements), draw(planner_settings)


def blocking_taints_tolerated(placement: Placement, n: NodeState) -> bool:
    return all(
        any(t.tolerates(taint) for t in placement.tolerations)
        for taint in n.taints
        if taint.effect in ("NoSchedule", "NoExecute")
    )


@settings(max_examples=300, deadline=None)
@given(cases())
def test_plans_respect_every_limit(case):
    nodes, pulling, on_node, demand, placement, cfg = case
    inv = inventory(nodes)
    plan = plan_prefetch(
        demand, shape(placement), inv, settings=cfg, replicas_on_node=on_node, pulling=pulling
    )
    by_name = {n.name: n for n in inv.nodes}
    chosen = [p.node for p in plan.pulls]
    assert len(chosen) == len(set(chosen))
    max_warm, max_flight = cfg.caps(sum(1 for v in (on_node or {}).values() if v > 0))
    if chosen:
        # never over the per-workload cap of warm spare nodes
        assert plan.spare_warm_nodes + len(chosen) <= max_warm
        assert plan.status == "pull"
    per_pool: dict[str, int] = {}
    for name in pulling:
        pool = node_pool(by_name[name])
        per_pool[pool] = per_pool.get(pool, 0) + 1
    for p in plan.pulls:
        n = by_name[p.node]
        assert p.node not in pulling
        assert disk_room(n, 140 * GB, cfg) is None  # never a node without disk room
        assert blocking_taints_tolerated(placement, n)  # never an untolerated taint
        assert n.ready and not n.unschedulable and n.gpus_free >= 4
        assert placement.rejects(n) is None
        assert all(not any(IMAGE.matches(x) for x in img.names) for img in n.images)
        per_pool[p.pool] = per_pool.get(p.pool, 0) + 1
    for pool, count in per_pool.items():
        planned = sum(1 for p in plan.pulls if p.pool == pool)
        assert planned == 0 or count <= max_flight
    # stop: never more pulls than needed to reach the target room
    if chosen:
        before_last = plan.warm_room_replicas + sum(p.room_replicas for p in plan.pulls[:-1])
        assert before_last < plan.target_room_replicas


@settings(max_examples=100, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_plans_are_deterministic_whatever_the_order(case, rnd: random.Random):
    nodes, pulling, on_node, demand, placement, cfg = case
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    a = plan_prefetch(
        demand, shape(placement), inventory(nodes), settings=cfg,
        replicas_on_node=on_node, pulling=pulling,
    )  # fmt: skip
    b = plan_prefetch(
        demand, shape(placement), inventory(shuffled), settings=cfg,
        replicas_on_node=on_node, pulling=list(reversed(pulling)),
    )  # fmt: skip
    assert a == b


# -- worked examples ----------------------------------------------------------------------------


def test_pulls_on_the_emptiest_cold_nodes_first_and_stops_at_the_target():
    inv = inventory([node("a", used=4), node("b"), node("c", used=4), node("d")])
    plan = plan_prefetch(
        Demand(replicas_needed=5, current_replicas=2),  # need 3 more + 1 spare = 4
        shape(),
        inv,
        settings=PlannerSettings(max_warm_nodes=4, max_concurrent_per_pool=4),
    )
    assert plan.status == "pull"
    assert [p.node for p in plan.pulls] == ["b", "d"]  # 2 replicas of room each
    assert plan.target_room_replicas == 4


def test_warm_room_already_there_means_enough():
    inv = inventory([node("a", images=((IMAGE.text, 140),)), node("b")])
    plan = plan_prefetch(
        Demand(2, 1), shape(), inv, settings=PlannerSettings(), replicas_on_node={"a": 0}
    )
    assert plan.status == "enough" and plan.pulls == ()
    assert plan.warm_nodes == ("a",) and plan.warm_room_replicas == 2


def test_cap_counts_warm_spare_nodes_not_nodes_running_the_workload():
    warm = (IMAGE.text, 140)
    inv = inventory(
        [node("a", used=8, images=(warm,)), node("b", images=(warm,)), node("c"), node("d")]
    )
    cfg = PlannerSettings(max_warm_nodes=2, max_concurrent_per_pool=5)
    plan = plan_prefetch(Demand(10, 2), shape(), inv, settings=cfg, replicas_on_node={"a": 2})
    assert plan.spare_warm_nodes == 1  # b; a runs the workload
    assert [p.node for p in plan.pulls] == ["c"]
    assert any("max_warm_nodes 2" in r for r in plan.reasons)
    capped = plan_prefetch(
        Demand(10, 2), shape(), inv, settings=PlannerSettings(max_warm_nodes=1),
        replicas_on_node={"a": 2},
    )  # fmt: skip
    assert capped.status == "capped" and capped.pulls == ()


def test_concurrency_is_capped_per_node_pool():
    nodes = [node(f"a{i}", labels={POOL: "a"}) for i in range(3)]
    nodes += [node(f"b{i}", labels={POOL: "b"}) for i in range(3)]
    cfg = PlannerSettings(max_warm_nodes=10, max_concurrent_per_pool=1)
    plan = plan_prefetch(Demand(20, 0), shape(), inventory(nodes), settings=cfg,
                         pulling=["a0"])  # fmt: skip
    assert sorted(p.node for p in plan.pulls) == ["b0"]
    assert any("max_concurrent_per_pool 1: a" in r for r in plan.reasons)


def test_disk_room_needs_twice_the_image_under_the_gc_threshold():
    cfg = PlannerSettings()
    # 1000 GB disk, 85% = 850 GB; images 2 x 300 = 600 GB; this one 2 x 140 = 280 -> 880 > 850
    full = node("full", disk_gb=1000, images=((OTHER, 300),))
    roomy = node("roomy", disk_gb=1000, images=((OTHER, 200),))  # 400 + 280 = 680 <= 850
    assert disk_room(full, 140 * GB, cfg) is not None
    assert disk_room(roomy, 140 * GB, cfg) is None
    assert disk_room(full, 140 * GB, PlannerSettings(on_disk_factor=1.0)) is None
    plan = plan_prefetch(Demand(3, 0), shape(), inventory([full, roomy]), settings=cfg)
    assert [p.node for p in plan.pulls] == ["roomy"]
    assert plan.skipped["full"].startswith("no disk room")


def test_no_eligible_node_says_why():
    nodes = [
        node("t", taints=(TAINTS[0],)),
        node("s", ready=False),
        node("f", used=8),
        node("x", cordoned=True),
    ]
    plan = plan_prefetch(Demand(3, 0), shape(), inventory(nodes), settings=PlannerSettings())
    assert plan.status == "no-eligible-node" and plan.pulls == ()
    text = plan.summary
    assert "no eligible node for registry.example.com/models/llama@sha256:" in text
    for why in (
        "1 untolerated taint (e.g. nvidia.com/gpu=present:NoSchedule)",
        "1 not Ready",
        "1 no free GPUs (e.g. 0 free, 4 per replica)",
        "1 unschedulable (cordoned)",
    ):
        assert why in text
    empty = plan_prefetch(Demand(1, 0), shape(), Inventory(), settings=PlannerSettings())
    assert empty.status == "no-eligible-node" and "no nodes" in empty.summary


def test_nodes_that_are_warm_or_pulling_are_not_called_missing():
    """Every node already holds or pulls the image, and their free GPUs are too few: the Event
    says so, not "the cluster has no nodes"."""
    inv = inventory([node("a", used=4), node("b", used=4)])
    plan = plan_prefetch(
        Demand(4, 0), shape(), inv, settings=PlannerSettings(max_concurrent_per_pool=5),
        known_warm=["a"], pulling=["b"],
    )  # fmt: skip
    assert plan.status == "no-eligible-node"
    assert "no nodes" not in plan.summary
    assert "1 already hold the image and 1 are pulling it, with room for 2 of the" in plan.summary
    mixed = plan_prefetch(
        Demand(4, 0), shape(), inventory([node("a", used=4), node("s", ready=False)]),
        settings=PlannerSettings(), known_warm=["a"],
    )  # fmt: skip
    assert "1 not Ready" in mixed.summary and "1 already hold the image" in mixed.summary


def test_tolerated_taint_and_selector_are_honoured():
    placement = Placement(
        node_selector={"gpu": "h100"},
        tolerations=(Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"),),
    )
    nodes = [
        node("h", labels={"gpu": "h100"}, taints=(TAINTS[0],)),
        node("a", labels={"gpu": "a100"}),
        node("d", labels={"gpu": "h100"}, taints=(TAINTS[1],)),
    ]
    plan = plan_prefetch(Demand(2, 0), shape(placement), inventory(nodes),
                         settings=PlannerSettings())  # fmt: skip
    assert [p.node for p in plan.pulls] == ["h"]
    assert plan.skipped["a"] == "nodeSelector mismatch: gpu=h100"
    assert "NoExecute" in plan.skipped["d"]


def test_ranking_follows_preferred_affinity_and_soft_taints():
    placement = Placement(
        preferred=(PreferredTerm(50, SelectorTerm((Requirement("zone", "In", ("z1",)),))),)
    )
    nodes = [
        node("p", taints=(TAINTS[2],)),  # PreferNoSchedule: last
        node("q"),
        node("z", labels={"zone": "z1"}),  # preferred: first
    ]
    cfg = PlannerSettings(max_warm_nodes=5, max_concurrent_per_pool=5)
    plan = plan_prefetch(Demand(8, 0), shape(placement), inventory(nodes), settings=cfg)
    assert [p.node for p in plan.pulls] == ["z", "q", "p"]


def test_full_image_list_is_not_taken_as_absence():
    big = tuple((f"{OTHER}-{i}", 200.0) for i in range(50))
    n = node("full", images=big, complete=False, disk_gb=100_000)
    plan = plan_prefetch(Demand(2, 0), shape(size_gb=140), inventory([n]),
                         settings=PlannerSettings())  # fmt: skip
    assert plan.pulls == () and "cannot tell" in plan.skipped["full"]
    # an image larger than every listed one would have been listed: absent for sure
    plan = plan_prefetch(Demand(2, 0), shape(size_gb=300), inventory([n]),
                         settings=PlannerSettings())  # fmt: skip
    assert [p.node for p in plan.pulls] == ["full"]


def test_unknown_image_size_plans_nothing_and_says_so():
    plan = plan_prefetch(Demand(2, 0), shape(size_gb=None), inventory([node("a")]),
                         settings=PlannerSettings())  # fmt: skip
    assert plan.status == "no-image-size" and "image_size_gb" in plan.summary


def test_known_warm_and_pulling_nodes_count_as_room_and_excluded_nodes_are_skipped():
    inv = inventory([node("a"), node("b"), node("c", used=4)])
    plan = plan_prefetch(
        Demand(4, 0), shape(), inv, settings=PlannerSettings(max_concurrent_per_pool=5),
        known_warm=["a"], pulling=["b"], exclude={"c": "pull failed (DeadlineExceeded)"},
    )  # fmt: skip
    assert plan.warm_nodes == ("a",) and plan.pulling_nodes == ("b",)
    assert plan.warm_room_replicas == 4
    assert plan.status == "no-eligible-node" and "excluded" in plan.skipped["c"]


def test_pure_modules_import_no_io():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "cache"
    for name in ("inventory.py", "placement.py", "planner.py"):
        tree = ast.parse((root / name).read_text())
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        bad = [m for m in mods if m.split(".")[0] in ("kubernetes", "urllib3", "aiohttp")]
        bad += [m for m in mods if m.startswith("autoscaler.clients")]
        assert bad == [], f"cache/{name} imports {bad}"


def test_recent_rise_is_the_largest_step_within_the_span_over_the_window():
    from cache.planner import recent_rise

    history = [(0.0, 10), (15.0, 10), (30.0, 18), (45.0, 16), (60.0, 20), (600.0, 21)]
    assert recent_rise(history, 600.0, span_s=30.0) == 8  # 10 -> 18 within 30 s
    assert recent_rise(history, 600.0, span_s=60.0) == 10  # 10 -> 20 within 60 s
    assert recent_rise(history, 4000.0, span_s=60.0, window_s=3600.0) == 0  # all older: 600 s
    assert recent_rise([(0.0, 5), (15.0, 3)], 15.0, span_s=300.0) == 0  # falling: none
    assert recent_rise([], 0.0, span_s=300.0) == 0


def test_target_room_takes_the_largest_of_spare_growth_and_recent_rise():
    from cache.planner import target_room

    cfg = PlannerSettings(spare_replicas=1)
    assert target_room(Demand(10, 10), cfg) == 1
    assert target_room(Demand(12, 10, growth_replicas=2.2), cfg) == 2 + 3
    assert target_room(Demand(10, 10, growth_replicas=2.2, recent_rise=6), cfg) == 6
    assert target_room(Demand(8, 10, growth_replicas=float("nan")), cfg) == 1
    nodes = inventory([node(f"n{i}") for i in range(4)])
    cfg = PlannerSettings(max_concurrent_per_pool=4)
    plan = plan_prefetch(Demand(2, 2, recent_rise=5), shape(), nodes, settings=cfg)
    assert plan.target_room_replicas == 5 and len(plan.pulls) == 3


def test_caps_grow_with_the_nodes_running_the_workload():
    # 40 nodes run the workload (2 replicas each, full); 30 empty nodes; a big rise is coming
    warm = (IMAGE.text, 140)
    busy = [node(f"w{i:02}", used=8, images=(warm,)) for i in range(40)]
    empty = [node(f"e{i:02}") for i in range(30)]
    on = {n.name: 2 for n in busy}
    demand = Demand(replicas_needed=100, current_replicas=80)
    fixed = plan_prefetch(
        demand, shape(), inventory(busy + empty),
        settings=PlannerSettings(fleet_fraction=0.0), replicas_on_node=on,
    )  # fmt: skip
    grown = plan_prefetch(
        demand, shape(), inventory(busy + empty), settings=PlannerSettings(), replicas_on_node=on
    )
    assert len(fixed.pulls) == 2  # max_concurrent_per_pool 2
    assert len(grown.pulls) == 4  # 10% of 40 nodes: 4 pulls, 4 warm spare nodes
    assert PlannerSettings().caps(40) == (4, 4)
    assert PlannerSettings().caps(95) == (10, 10)
    assert PlannerSettings().caps(3) == (4, 2)  # the absolute caps are floors
    assert PlannerSettings(fleet_fraction=0.0).caps(1000) == (4, 2)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_warm_nodes": -1},
        {"max_concurrent_per_pool": 0},
        {"fleet_fraction": 1.5},
        {"gc_high_threshold_percent": 0.0},
        {"gc_high_threshold_percent": 101.0},
        {"on_disk_factor": 0.0},
    ],
)
def test_planner_settings_reject_every_out_of_range_field(bad):
    with pytest.raises(ValueError):
        PlannerSettings(**bad)
