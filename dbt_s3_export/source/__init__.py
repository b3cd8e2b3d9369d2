"""Reading the model: a DuckDB relation (or an Arrow table) as a stream of batches.

``base`` holds the ``BatchSource`` seam every export path reads through, the size of
a batch and the Arrow source; ``batches`` the DuckDB source, with the type plan
applied in SQL; ``grouping``
orders rows by partition so each partition streams as one run of slices; ``rows``
chooses what an export reads (the model, its incremental batch, or the partitions the
batch touched, each whole). May import
``errors``, ``options`` and ``encoding``.
"""

from .base import ArrowSource, BatchSource
from .batches import DuckDBSource

__all__ = ["ArrowSource", "BatchSource", "DuckDBSource"]
