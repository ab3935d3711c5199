"""Feature tables on disk: the 115 N-BaIoT columns as CSV or Parquet, written chunk by chunk."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fedcl.data import COLUMNS, N_FEATURES

__all__ = ["FeatureWriter"]

# Rows per write (and per Parquet row group): 32,768 × 115 float64 is 30 MB, so a writer holds
# at most ~60 MB (one chunk filling, one being written) however long the capture.
_ROWS_PER_WRITE = 32_768
_SCHEMA = pa.schema([(name, pa.float64()) for name in COLUMNS])


class FeatureWriter:
    """Write rows of the 115 N-BaIoT features to a CSV, or to Parquet for a name ending in ``.parquet``.

    Rows are written as they come, in bounded memory; formatting runs in a background thread
    (pyarrow releases the GIL), so it overlaps with the caller's work on the next rows.

    The CSV has the header ``fedcl.data.COLUMNS`` (unquoted, as N-BaIoT's) and each value is the
    shortest decimal string that parses back to the same float64 (``1`` where ``repr`` gives ``1.0``):
    fedcl's readers get back exactly the values written. NaN is written ``nan``.
    The Parquet file has the same 115 float64 columns, one row group per write of 32,768 rows or more.

    Parameters
    ----------
    path : str or os.PathLike
        File to create (replaced if it exists); its folder must exist.

    Attributes
    ----------
    format : {"csv", "parquet"}
    n_rows : int
        Rows passed to :meth:`write` so far.

    Examples
    --------
    >>> with FeatureWriter("features.parquet") as out:  # doctest: +SKIP
    ...     for chunk in batches(read_packets("capture.pcap")):
    ...         out.write(extractor.extract(chunk))
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.format = "parquet" if self.path.suffix.lower() == ".parquet" else "csv"
        if self.format == "parquet":
            # No dictionary encoding: feature values rarely repeat, and trying costs 5× the write time.
            self._writer = pq.ParquetWriter(self.path, _SCHEMA, use_dictionary=False)
        else:
            self._writer = pa_csv.CSVWriter(self.path, _SCHEMA, write_options=pa_csv.WriteOptions(
                quoting_style="none", quoting_header="none"))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedcl-features")
        self._pending: Future | None = None
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self.n_rows = 0

    def write(self, rows: np.ndarray) -> None:
        """Append rows, shape (n, 115), in order. The array is kept until written: do not modify it."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != N_FEATURES:
            raise ValueError(f"rows must have shape (n, {N_FEATURES}), not {rows.shape}")
        self._buffer.append(rows)
        self._buffered += len(rows)
        self.n_rows += len(rows)
        if self._buffered >= _ROWS_PER_WRITE:
            self._submit()

    def close(self) -> None:
        """Write what is left and close the file; raises the error of a failed write, if any."""
        if self._pool is None:
            return
        try:
            if self._buffered:
                self._submit()
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
            self._pool = None
            self._writer.close()

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _submit(self) -> None:
        """Hand the buffered rows to the writing thread, once the previous write is done (order, memory)."""
        chunks, self._buffer, self._buffered = self._buffer, [], 0
        self._wait()
        self._pending = self._pool.submit(self._write_now, chunks)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _write_now(self, chunks: list[np.ndarray]) -> None:
        # Column-major copy: pa.array then wraps each column without another copy.
        columns = np.ascontiguousarray(np.concatenate(chunks).T)
        self._writer.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=_SCHEMA))
