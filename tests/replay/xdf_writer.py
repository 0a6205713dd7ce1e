"""A minimal XDF 1.0 writer (what LabRecorder writes), so tests read real files with pyxdf."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_FORMATS = {"float32": "<f4", "double64": "<f8", "int32": "<i4", "int16": "<i2"}


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes, stream_id: int | None = None) -> bytes:
    body = struct.pack("<H", tag)
    if stream_id is not None:
        body += struct.pack("<I", stream_id)
    body += content
    return _varlen(len(body)) + body


def write_xdf(path: str | Path, streams: list[dict]) -> Path:
    """Write streams to an XDF file.

    Each stream is ``{"xml": <info>...</info> (e.g. pylsl.StreamInfo.as_xml()),
    "format": "float32" | ... | "string", "data": (n_samples, n_chans) array or list
    of lists of str, "stamps": (n_samples,) seconds}``.
    """
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, start=1):
        xml = s["xml"]
        if xml.startswith("<?xml"):
            xml = xml[xml.index("?>") + 2 :]
        out += _chunk(2, xml.encode(), sid)
    for sid, s in enumerate(streams, start=1):
        stamps = np.asarray(s["stamps"], dtype=float)
        for a in range(0, len(stamps), 100):  # chunks of 100 samples, as LabRecorder
            rows = s["data"][a : a + 100]
            content = bytearray(_varlen(len(rows)))
            for row, ts in zip(rows, stamps[a : a + 100], strict=True):
                content += struct.pack("<Bd", 8, ts)
                if s["format"] == "string":
                    for v in row:
                        b = str(v).encode()
                        content += _varlen(len(b)) + b
                else:
                    content += np.asarray(row, dtype=_FORMATS[s["format"]]).tobytes()
            out += _chunk(3, bytes(content), sid)
        for t in (stamps[0], stamps[-1]) if len(stamps) else ():  # clock offsets: 0 (one host)
            out += _chunk(4, struct.pack("<dd", t, 0.0), sid)
        footer = (
            f"<info><first_timestamp>{stamps[0] if len(stamps) else 0}</first_timestamp>"
            f"<last_timestamp>{stamps[-1] if len(stamps) else 0}</last_timestamp>"
            f"<sample_count>{len(stamps)}</sample_count></info>"
        )
        out += _chunk(6, footer.encode(), sid)
    path = Path(path)
    path.write_bytes(bytes(out))
    return path
