"""Reader for BurstGPT CSV traces (HPMLL/BurstGPT; Azure OpenAI GPT-3.5/GPT-4 usage).

Header: ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`` (v1/v2); v3 adds
``Session ID`` and ``Elapsed time``. Only ``Timestamp`` (seconds from the trace start),
``Request tokens`` and ``Response tokens`` are needed; columns are found by name, so both layouts
read. ``Model`` and ``Log Type`` are not used: the trace is replayed as one workload.

Failed requests. BurstGPT marks a failure with ``Response tokens`` = 0. We keep those rows, as
requests with 1 output token, because:

* they arrived and (in the service that recorded them) were admitted and prefilled, so they are
  demand a fleet must absorb; dropping them would under-count load precisely in the overloaded
  minutes where failures cluster, which are the minutes an autoscaler is judged on;
* one output token means "prefill only" to the replica model, which is what a request that
  returned nothing cost; 0 would break the TPOT formula (it divides by output tokens - 1), and the
  simulator already treats fewer than 1 as 1.

The note in traces/README.md applies: the shared folder holds no BurstGPT file, and a same-named
file in another repository is synthetic; tests use small hand-written files.
"""

from __future__ import annotations

from collections.abc import Iterator

from autoscaler.traces._parsing import (
    PathLike,
    RequestRow,
    csv_table,
    parse_count,
    parse_real,
)

FORMAT = "burstgpt"
TIMESTAMP = "Timestamp"
PROMPT = "Request tokens"
OUTPUT = "Response tokens"
COLUMNS = (TIMESTAMP, PROMPT, OUTPUT)
FAILED_OUTPUT_TOKENS = 1
"""Output length given to a failed request (``Response tokens`` = 0); see the module docstring."""


def looks_like(first_line: str) -> bool:
    """True when a header line names BurstGPT's columns (used by format detection)."""
    names = {name.strip().lower() for name in first_line.split(",")}
    return all(column.lower() in names for column in COLUMNS)


def iter_requests(path: PathLike) -> Iterator[RequestRow]:
    """Yield one :class:`RequestRow` per data row, lazily; failures get 1 output token.

    Raises :class:`~autoscaler.errors.TraceFormatError` for a wrong column count, a timestamp that
    is not a finite number, or a token count that is not a non-negative integer.
    """
    with csv_table(path, COLUMNS, "BurstGPT trace") as table:
        if table is None:
            return
        name, index = table.name, table.columns
        i_time, i_prompt, i_output = index[TIMESTAMP], index[PROMPT], index[OUTPUT]
        for line, row in table.rows:
            output = parse_count(row[i_output], OUTPUT, name, line)
            yield RequestRow(
                parse_real(row[i_time], TIMESTAMP, name, line),
                parse_count(row[i_prompt], PROMPT, name, line),
                output if output > 0 else FAILED_OUTPUT_TOKENS,
            )
