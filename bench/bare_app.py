"""The ceiling for ``bench/serving.py``: a bare FastAPI endpoint that takes the same multipart
upload as the service and answers a small JSON, nothing else (no image work, no model, no
store, no middleware). Served with the service's own worker arrangement:

    .venv/bin/python bench/bare_app.py --port 8001 --workers 2 [--preprocess]

With ``--preprocess`` the endpoint also decodes the upload and makes the model's 28x28 input,
on the event loop: the least that every service must do for an upload, and still no model,
store, authentication or metrics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, UploadFile

from mnist_core.imaging import decode, to_mnist


def make_app(*, preprocess: bool) -> FastAPI:
    app = FastAPI()
    if preprocess:

        @app.post("/v1/predictions", status_code=201)
        async def upload_and_preprocess(file: UploadFile) -> dict[str, int]:
            data = await file.read()
            return {"size": len(data), "ink": int(to_mnist(decode(data).image).sum())}

    else:

        @app.post("/v1/predictions", status_code=201)
        async def upload(file: UploadFile) -> dict[str, int]:
            data = await file.read()
            return {"size": len(data)}

    return app


app = make_app(preprocess=False)
preprocessing_app = make_app(preprocess=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--preprocess", action="store_true", help="decode and preprocess too")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    name = "preprocessing_app" if args.preprocess else "app"
    common = {"host": "127.0.0.1", "port": args.port, "log_level": "warning"}
    if args.workers == 1:
        uvicorn.run(globals()[name], **common)  # type: ignore[arg-type]
        return 0
    from mnist_api.kernel.workers import Workers

    return Workers(uvicorn.Config(f"bare_app:{name}", **common), args.workers).run()  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
