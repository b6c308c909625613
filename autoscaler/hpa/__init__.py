"""Emulation of the Kubernetes HorizontalPodAutoscaler for External metrics.

``spec`` holds the declarative types (metric targets, ``behavior``); ``behavior`` holds the
behaviour this project ships (rendered into ``deploy/``); ``controller`` runs the algorithm of
kube-controller-manager (``replica_calculator.go``, ``horizontal.go``).
"""
