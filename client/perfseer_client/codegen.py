"""Regenerate the checked-in gRPC code from ``proto/perfseer/v1/perfseer.proto``.

protoc writes ``from perfseer.v1 import perfseer_pb2``, which would collide with
the ``perfseer`` CLI package; the generated module is rewritten to a relative
import.  ``make proto`` runs this; a test checks that it reproduces the files.
"""
from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PROTO_FILE = "perfseer/v1/perfseer.proto"
OUT = Path(__file__).resolve().parent / "v1"
GENERATED = ("perfseer_pb2.py", "perfseer_pb2.pyi", "perfseer_pb2_grpc.py")


def generate(out_dir: Path = OUT, proto_root: Path = PROTO_ROOT) -> list[Path]:
    import tempfile

    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        code = protoc.main(["protoc", f"-I{proto_root}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                            f"--grpc_python_out={tmp}", str(proto_root / PROTO_FILE)])
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            text = (Path(tmp) / "perfseer" / "v1" / name).read_text()
            text = text.replace("from perfseer.v1 import perfseer_pb2", "from . import perfseer_pb2")
            (out_dir / name).write_text(text)
            written.append(out_dir / name)
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path)
