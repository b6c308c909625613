"""Model shapes and GPU facts, and the KV-cache capacity of a replica that follows from them.

The fitted cost coefficients say how long a step takes; how many tokens a replica can hold at once
is not in the Splitwise CSV and comes from arithmetic instead (``traces/README.md`` §4c): the KV
cache of one token takes ``2 (K and V) x layers x kv_heads x head_dim x dtype_bytes`` bytes, split
across the tensor-parallel ranks, and vLLM gives the KV cache what is left of
``gpu_memory_utilization`` x GPU memory after the weights and the activation peak.

The same facts give the physics value of the decode cost per context token (each decode step
streams the whole KV cache of the batch through HBM once), used where the CSV cannot identify it,
and the upper bound on the prefill attention coefficient (the attention FLOPs of a causal prompt
at a minimum MFU), which keeps the fit physical beyond the CSV's 8,192-token prompts
(:mod:`autoscaler.perf.fitting`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.errors import InputError, UnknownNameError

GIB = 1024**3

#: vLLM's default share of GPU memory it may use (weights + activations + KV cache).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: Memory per GPU kept for the activation peak, CUDA context and NCCL buffers. The one real vLLM
#: log at hand (``traces/README.md`` §4c, PR #550) shows a 2.38 GiB activation peak on an 80 GB
#: GPU; 3 GiB rounds that up for the communication buffers tensor parallelism adds.
DEFAULT_ACTIVATION_RESERVE_GIB = 3.0
#: vLLM allocates the KV cache in blocks of 16 tokens, so capacity is a multiple of 16.
DEFAULT_BLOCK_SIZE = 16
#: Lowest model-FLOPs utilisation assumed for prefill attention. FlashAttention-2 reaches 50-70%
#: of peak on long causal sequences; 0.30 leaves room for the TP split and short-chunk overheads.
MIN_ATTENTION_MFU = 0.30


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the KV-cache and weight arithmetic needs from a model's Hugging Face config."""

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    params: int
    hidden: int
    """Model (residual stream) width: query heads x head dim."""
    dtype_bytes: int = 2  # fp16/bf16, as the Splitwise measurements ran

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights across all ranks (embeddings included, nothing replicated)."""
        return self.params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token needs across all ranks (K and V, every layer)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes

    def kv_heads_per_rank(self, tp: int) -> int:
        """KV heads each rank stores; below one head per rank vLLM replicates heads."""
        return max(1, math.ceil(self.kv_heads / tp))


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """Memory, HBM bandwidth and peak dense fp16/bf16 tensor throughput of one GPU."""

    name: str
    memory_bytes: int
    hbm_bandwidth_bytes_per_s: float
    peak_flops: float
    """Dense (no sparsity) fp16/bf16 tensor-core FLOP/s, the datasheet peak."""
    note: str = ""


# Shapes from the models' Hugging Face configs; parameter counts as the model cards state them.
LLAMA2_70B = ModelShape(
    name="llama2-70b", layers=80, kv_heads=8, head_dim=128, params=68_976_648_192, hidden=8192
)
BLOOM_176B = ModelShape(
    name="bloom-176b", layers=70, kv_heads=112, head_dim=128, params=176_247_271_424, hidden=14336
)

# "80 GB" cards show 79.19 GiB to CUDA (the vLLM log in traces/README.md §4c); bandwidths and
# dense fp16/bf16 tensor peaks are NVIDIA's datasheet figures for the SXM parts (A100 80GB
# 2.0 TB/s and 312 TFLOP/s, H100 SXM 3.35 TB/s and 989 TFLOP/s).
_MEMORY_80GB = int(79.19 * GIB)
A100_80GB = GpuSpec("a100-80gb", _MEMORY_80GB, 2.0e12, 312e12)
H100_80GB = GpuSpec("h100-80gb", _MEMORY_80GB, 3.35e12, 989e12)
# Splitwise's power-capped H100: the same part, so the same memory, bandwidth and peak. Its CSV
# rows repeat the H100 decode times and scale prefill by ~1.3, i.e. they look derived, not
# measured.
H100_80GB_PCAP = GpuSpec(
    "h100-80gb-pcap",
    _MEMORY_80GB,
    3.35e12,
    989e12,
    note="power-capped H100; CSV rows look derived from h100-80gb",
)

MODEL_SHAPES: tuple[ModelShape, ...] = (LLAMA2_70B, BLOOM_176B)
GPU_SPECS: tuple[GpuSpec, ...] = (A100_80GB, H100_80GB, H100_80GB_PCAP)


def model_shape(name: str) -> ModelShape:
    """The shape of ``name`` (``llama2-70b`` or ``bloom-176b``)."""
    for shape in MODEL_SHAPES:
        if shape.name == name:
            return shape
    raise UnknownNameError("model", name, [s.name for s in MODEL_SHAPES])


def gpu_spec(name: str) -> GpuSpec:
    """The facts of the GPU named as in the CSV (``a100-80gb``, ``h100-80gb``, ...)."""
    for gpu in GPU_SPECS:
        if gpu.name == name:
            return gpu
    raise UnknownNameError("GPU", name, [g.name for g in GPU_SPECS])


def kv_capacity_tokens(
    shape: ModelShape,
    gpu: GpuSpec,
    tp: int,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    activation_reserve_gib: float = DEFAULT_ACTIVATION_RESERVE_GIB,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> int:
    """Tokens of KV cache one replica on ``tp`` GPUs holds, as vLLM would size it.

    Per rank: ``memory x utilization - weights / tp - activation reserve`` bytes are left for the
    KV cache, and each token takes ``kv_bytes_per_token`` spread over the ranks. When the KV heads
    divide evenly over the ranks this equals
    ``(tp x memory x utilization - weights - tp x reserve) / kv_bytes_per_token``. The result is
    rounded down to whole ``block_size`` blocks. ``activation_reserve_gib`` is per GPU.

    Raises :class:`InputError` when the weights and the reserve leave no room for one block.
    """
    if tp < 1:
        raise InputError(f"tensor parallelism must be >= 1, got {tp}")
    if not 0 < gpu_memory_utilization <= 1:
        raise InputError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if activation_reserve_gib < 0:
        raise InputError(f"activation reserve must be >= 0 GiB, got {activation_reserve_gib}")
    if block_size < 1:
        raise InputError(f"block size must be >= 1, got {block_size}")
    usable = gpu.memory_bytes * gpu_memory_utilization
    free_per_rank = usable - shape.weight_bytes / tp - activation_reserve_gib * GIB
    bytes_per_token_per_rank = (
        2 * shape.layers * shape.kv_heads_per_rank(tp) * shape.head_dim * shape.dtype_bytes
    )
    blocks = math.floor(free_per_rank / (bytes_per_token_per_rank * block_size))
    if blocks < 1:
        need_gib = (shape.weight_bytes / tp + activation_reserve_gib * GIB) / GIB
        raise InputError(
            f"{shape.name} does not fit on {tp} x {gpu.name}: each GPU needs "
            f"{need_gib:.1f} GiB for weights and activations but may use "
            f"{usable / GIB:.1f} GiB ({gpu_memory_utilization:.0%} of {gpu.memory_bytes / GIB:.1f}"
            " GiB); use more GPUs (a larger TP)"
        )
    return blocks * block_size


def decode_seconds_per_ctx_token(shape: ModelShape, gpu: GpuSpec, tp: int) -> float:
    """Decode time per context token from physics: a step reads every cached K and V once.

    Each rank streams its share of the KV cache (``kv_bytes_per_token / tp`` per token) at the
    GPU's peak HBM bandwidth, so this is a lower bound; attention kernels reach less than peak.
    """
    per_rank = 2 * shape.layers * shape.kv_heads_per_rank(tp) * shape.head_dim * shape.dtype_bytes
    return per_rank / gpu.hbm_bandwidth_bytes_per_s


def prefill_attn_max_s(
    shape: ModelShape, gpu: GpuSpec, tp: int, min_mfu: float = MIN_ATTENTION_MFU
) -> float:
    """Upper bound on the prefill attention coefficient (s per token²), from FLOPs.

    The attention of a causal prompt of ``n`` tokens (``Q Kᵀ`` and ``P V``, half the square
    masked) takes about ``2 x layers x hidden x n²`` FLOPs, split over the ``tp`` ranks. At an
    MFU of at least ``min_mfu`` of the GPU's dense peak it takes at most
    ``2 layers hidden n² / (tp x peak x min_mfu)`` seconds.
    """
    if tp < 1:
        raise InputError(f"tensor parallelism must be >= 1, got {tp}")
    if not 0 < min_mfu <= 1:
        raise InputError(f"min_mfu must be in (0, 1], got {min_mfu}")
    return 2.0 * shape.layers * shape.hidden / (tp * gpu.peak_flops * min_mfu)
