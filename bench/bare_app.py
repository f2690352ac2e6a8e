"""The ceiling for ``bench/serving.py``: a bare FastAPI endpoint that takes the same multipart
upload as the service and answers a small JSON, nothing else (no image work, no model, no
store, no middleware). Served with the service's own worker arrangement:

    .venv/bin/python bench/bare_app.py --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, UploadFile

app = FastAPI()


@app.post("/v1/predictions", status_code=201)
async def upload(file: UploadFile) -> dict[str, int]:
    data = await file.read()
    return {"size": len(data)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    common = {"host": "127.0.0.1", "port": args.port, "log_level": "warning"}
    if args.workers == 1:
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return 0
    from mnist_api.kernel.workers import Workers

    return Workers(uvicorn.Config("bare_app:app", **common), args.workers).run()  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
