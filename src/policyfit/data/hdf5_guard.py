"""A check of an HDF5 file's global heaps before libhdf5 reads them.

libhdf5 (2.0.0, bundled with h5py 3.16) loops forever when it loads a damaged global heap
collection (``GCOL``, where variable-length strings such as our metadata attribute and d3rlpy's
``columns``/``version`` live) whose next object has index 0 and size 0: its parser advances by
the object's size, i.e. not at all (``H5HG__cache_heap_deserialize``). A zeroed block in a file
is enough (found by ``tests/data/test_fuzz_readers.py``), and no signal can interrupt that loop,
so ``policyfit data inspect`` would hang for good. :func:`check_global_heaps` walks every heap
collection of the file the way libhdf5 does and raises a :class:`DatasetError` where libhdf5
would not advance.

The walk assumes 8-byte lengths (the default of every HDF5 writer policyfit knows); a match of
``GCOL`` inside raw data is harmless: it is rejected only if it also looks like a collection that
would make libhdf5 loop.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from policyfit.errors import DatasetError

SIGNATURE = b"GCOL"
HEADER = 16  # signature, version, 3 reserved bytes, collection size (8 bytes)
OBJECT_HEADER = 16  # index (2), reference count (2), reserved (4), object size (8)


def _stuck_object(data: mmap.mmap | bytes, start: int) -> int | None:
    """Offset of the object at which libhdf5 would stop advancing in the collection at ``start``,
    or None when the walk ends (or this is no collection)."""
    if start + HEADER > len(data) or data[start + 4] != 1:
        return None
    (size,) = struct.unpack_from("<Q", data, start + 8)
    end = min(start + size, len(data))
    p = start + HEADER
    while p + OBJECT_HEADER <= end:
        (index,) = struct.unpack_from("<H", data, p)
        (obj_size,) = struct.unpack_from("<Q", data, p + 8)
        if obj_size >= 2**62:  # begin + size would wrap around in libhdf5's pointer arithmetic
            return p
        need = OBJECT_HEADER + (obj_size + 7) // 8 * 8 if index > 0 else obj_size
        if need == 0:
            return p
        p += need
    return None


def check_global_heaps(path: str | Path) -> None:
    """Raise a DatasetError when a global heap collection of the HDF5 file at ``path`` would make
    libhdf5 loop forever; do nothing otherwise (other damage is left to h5py's own errors)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, 2) == 0:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                start = data.find(SIGNATURE)
                while start >= 0:
                    stuck = _stuck_object(data, start)
                    if stuck is not None:
                        raise DatasetError(
                            f"damaged HDF5 file: the global heap at byte {start} has an object "
                            f"at byte {stuck} that libhdf5 cannot step over (zeroed or "
                            "overwritten bytes?); restore the file from a good copy",
                            path=str(path),
                            field="file",
                        )
                    start = data.find(SIGNATURE, start + 1)
    except OSError:
        return  # unreadable: h5py's own error says so
