"""Emulation of the Kubernetes HorizontalPodAutoscaler for External metrics.

``spec`` holds the declarative types (metric targets, ``behavior``); ``behavior`` holds the
behaviour this project ships (rendered into ``deploy/``); ``controller`` runs the algorithm of
kube-controller-manager (``replica_calculator.go``, ``horizontal.go``).

May import: the core, ``autoscaler.kubernetes_support`` and ``autoscaler.errors``. Never a client,
the simulator, a policy or the live loop (``tests/test_layout.py``): the policies and the
simulator import it, not the other way round.
"""
