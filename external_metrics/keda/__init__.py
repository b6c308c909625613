"""KEDA external scaler (gRPC ``externalscaler.ExternalScaler``), serving the store to KEDA.

Modules: :mod:`.metadata` (which workload/metric a trigger names), :mod:`.reading` (what to
answer, pure), :mod:`.servicer` (the RPCs), :mod:`.server` (the TLS gRPC server factory),
:mod:`.errors`. ``externalscaler.proto`` is the wire contract; ``externalscaler_pb2*`` are
generated from it by ``make proto`` and never edited by hand. Usage: ``docs/keda.md``.

May import what ``external_metrics`` may (the store, the core, ``autoscaler.errors``); never a
client.
"""

from external_metrics.keda.server import ScalerServer, create_grpc_server
from external_metrics.keda.servicer import ExternalScalerServicer

__all__ = ["ExternalScalerServicer", "ScalerServer", "create_grpc_server"]
