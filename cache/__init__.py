"""Modelcar image prefetch: pull the model's image onto the nodes new replicas will land on.

Pure decisions (no I/O; the simulator uses them as they are):

- :mod:`cache.inventory`: nodes, their images (``status.images``), free GPUs and disk, from the
  API's raw dicts (:mod:`cache.watched_inventory` keeps the same current by a list + watch
  through an injected source).
- :mod:`cache.placement`: the workload's nodeSelector, node affinity and tolerations.
- :mod:`cache.planner`: which nodes to pull onto, how many, when to stop.

Acting on the cluster (through ``autoscaler.clients.kube``):

- :mod:`cache.executor`: prefetch Job manifests, Job outcomes, the warm-node label, metrics.
- :mod:`cache.leader`: leader election on a Lease (only the leader acts).
- :mod:`cache.prefetcher`: :class:`~cache.prefetcher.Prefetcher`, the one entry point ``serve``
  calls each tick.

``docs/prefetch.md`` describes the whole; this package never decides replica counts.

May import: the core, ``autoscaler.config``, ``autoscaler.errors`` and, in the acting modules
only, ``autoscaler.clients.kube``. Never a policy (``tests/test_layout.py``): it follows the
recommendation, it does not make it.
"""
