"""``/v1/predictions``: upload, history, one prediction, its images, its label; and the
original system's ``/upload``, kept so that
``curl -XPOST http://HOST:PORT/upload -F "file=@digit.png"`` keeps working.

Routes are thin: they take the request apart, call the service, and make the HTTP schemas from
the records it returns."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, Path, Query, Response, UploadFile, status

from mnist_api.kernel.errors import TooManyFiles, problem_responses
from mnist_api.keys import AUTH_PROBLEMS, KeyServiceDep, Predictor
from mnist_api.predictions.cursor import (
    decode_cursor,
    decode_review_cursor,
    encode_cursor,
    encode_review_cursor,
)
from mnist_api.predictions.dependencies import (
    DeleterDep,
    LabelerDep,
    ReaderDep,
    ServiceDep,
    UploaderDep,
    caller_of,
)
from mnist_api.predictions.schemas import (
    CURSOR_PATTERN,
    REVIEW_CURSOR_PATTERN,
    BatchItem,
    BatchResult,
    LabelUpdate,
    Prediction,
    PredictionPage,
    ReviewPage,
)

# Every operation needs a key with a scope (when authentication is on): 401, 403 and 429 apply.
router = APIRouter(
    prefix="/v1/predictions", tags=["predictions"], responses=problem_responses(*AUTH_PROBLEMS)
)
legacy_router = APIRouter(tags=["legacy"], responses=problem_responses(*AUTH_PROBLEMS))
review_router = APIRouter(
    prefix="/v1/review", tags=["predictions"], responses=problem_responses(*AUTH_PROBLEMS)
)

UploadField = Annotated[
    UploadFile,
    File(description="an image of one handwritten digit: PNG, JPEG, GIF, BMP, WebP or TIFF"),
]
# ``{prediction_id:uuid}`` in the paths: only a UUID reaches these routes, so another word in its
# place (``GET /v1/predictions/batch``) is a path of its own: 405 there, 404 anywhere else.
PredictionId = Annotated[UUID, Path(description="the prediction's id")]
MAX_PAGE = 100
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
_CURSOR = {"max_length": 64, "description": "`next_cursor` of the previous page"}
# Anything but a cursor this API issued: 400 invalid-cursor.
HistoryCursor = Annotated[
    str | None, Query(**_CURSOR, json_schema_extra={"pattern": CURSOR_PATTERN})
]
ReviewCursor = Annotated[
    str | None, Query(**_CURSOR, json_schema_extra={"pattern": REVIEW_CURSOR_PATTERN})
]
# Images never change, but only their owner may see them: a browser keeps them for an hour, and
# for the key that asked only (a cached copy is never handed to another key in the same browser).
PRIVATE_CACHE = {"Cache-Control": "private, max-age=3600", "Vary": "Authorization, X-API-Key"}
# OpenAPI links: what a client (or a stateful test generator) can do with a new prediction's id.
ID_LINKS = {
    operation: {
        "operationId": operation,
        "parameters": {"prediction_id": "$response.body#/id"},
        "description": f"`id` of the answer as `prediction_id` of `{operation}`",
    }
    for operation in (
        "get_prediction",
        "get_prediction_image",
        "get_prediction_input",
        "set_prediction_label",
        "delete_prediction",
    )
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Recognise the digit in an uploaded image",
    description="Stores the upload and the prediction; the `Location` header names the new "
    "prediction.",
    responses={
        201: {
            "description": "The prediction, stored",
            "links": ID_LINKS,
            "headers": {
                "Location": {
                    "description": "the new prediction's address",
                    "schema": {"type": "string", "format": "uri-reference"},
                }
            },
        },
        **problem_responses(400, 413, 415, 422, 503),
    },
)
async def create_prediction(
    file: UploadField, caller: UploaderDep, service: ServiceDep, response: Response
) -> Prediction:
    record = await service.predict(caller, file)
    response.headers["Location"] = f"/v1/predictions/{record.id}"
    return Prediction.of(record, service.thresholds)


@router.post(
    "/batch",
    summary="Recognise the digits in several images",
    description="One result per file, in order: a prediction (status 201) or the problem that "
    "stopped that file. Files are independent: one bad file does not fail the others. Each "
    "file counts as one request against the key's rate limit.",
    responses=problem_responses(400, 413, 422, 503),
)
async def create_predictions_batch(
    files: Annotated[list[UploadFile], File(description="the images, as repeated `files` fields")],
    principal: Predictor,
    keys: KeyServiceDep,
    service: ServiceDep,
    response: Response,
) -> BatchResult:
    limit = service.max_batch_files
    if len(files) > limit:
        raise TooManyFiles(f"{len(files)} files sent; a batch takes at most {limit}")
    if len(files) > 1:  # the request itself took one token on its way in
        decision = await keys.limit(principal, cost=len(files) - 1)
        if decision is not None:
            response.headers.update(decision.headers())
    items = []
    for outcome in await service.predict_many(caller_of(principal), list(files)):
        if outcome.record is not None:
            prediction = Prediction.of(outcome.record, service.thresholds)
            items.append(BatchItem(filename=outcome.filename, status=201, prediction=prediction))
        elif outcome.error is not None:
            error = outcome.error
            items.append(
                BatchItem(filename=outcome.filename, status=error.status, problem=error.problem())
            )
    return BatchResult(items=items)


@router.get(
    "",
    summary="List past predictions, newest first",
    description="Keyset paging: pass `next_cursor` as `cursor` to continue. Pages stay stable "
    "while new uploads arrive: nothing is skipped or repeated.",
    responses=problem_responses(400, 503),
)
async def list_predictions(
    caller: ReaderDep,
    service: ServiceDep,
    limit: PageSize = 20,
    cursor: HistoryCursor = None,
    digit: Annotated[int | None, Query(ge=0, le=9, description="only this predicted digit")] = None,
    labeled: Annotated[
        bool | None, Query(description="true: only corrected ones; false: only uncorrected")
    ] = None,
    owner: Annotated[
        str | None,
        Query(
            max_length=64,
            description="only this owner's predictions (a key's id, or `anonymous`); other "
            "owners than the caller's own need an admin key",
        ),
    ] = None,
) -> PredictionPage:
    before = decode_cursor(cursor) if cursor is not None else None
    page = await service.history(
        caller, limit=limit, before=before, digit=digit, labeled=labeled, owner=owner
    )
    thresholds = service.thresholds
    return PredictionPage(
        items=[Prediction.of(record, thresholds) for record in page.items],
        next_cursor=encode_cursor(page.next_before) if page.next_before else None,
    )


@router.get(
    "/{prediction_id:uuid}", summary="Get one prediction", responses=problem_responses(404, 503)
)
async def get_prediction(
    prediction_id: PredictionId, caller: ReaderDep, service: ServiceDep
) -> Prediction:
    return Prediction.of(await service.get(caller, prediction_id), service.thresholds)


@router.get(
    "/{prediction_id:uuid}/image",
    summary="Download the uploaded image",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(404, 503),
    },
)
async def get_prediction_image(
    prediction_id: PredictionId, caller: ReaderDep, service: ServiceDep
) -> Response:
    image = await service.image(caller, prediction_id)
    extension = image.content_type.removeprefix("image/").split("+")[0] or "bin"
    return Response(
        image.data,
        media_type=image.content_type,
        headers={
            **PRIVATE_CACHE,
            # Someone's upload: a download, never a document rendered on this origin.
            "Content-Disposition": f'attachment; filename="{prediction_id}.{extension}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get(
    "/{prediction_id:uuid}/input.png",
    summary="Download the 28x28 image the model saw",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(404, 503),
    },
)
async def get_prediction_input(
    prediction_id: PredictionId, caller: ReaderDep, service: ServiceDep
) -> Response:
    png = await service.input_png(caller, prediction_id)
    return Response(png, media_type="image/png", headers=PRIVATE_CACHE)


@router.put(
    "/{prediction_id:uuid}/label",
    summary="Correct a prediction",
    description="Records the true digit and when it was given, for analysis and retraining. A "
    "labelled prediction leaves the review queue.",
    responses=problem_responses(400, 404, 413, 503),
)
async def set_prediction_label(
    prediction_id: PredictionId, body: LabelUpdate, caller: LabelerDep, service: ServiceDep
) -> Prediction:
    record = await service.label(caller, prediction_id, body.label)
    return Prediction.of(record, service.thresholds)


@router.put(
    "/{prediction_id:uuid}/not-a-digit",
    summary="Say that an upload shows no digit",
    description="A person's label for an upload that is not a digit at all (a letter, a photo, "
    "a smudge): the prediction gets `labeled_not_a_digit` and leaves the review queue, and "
    "`mnist-api export-labels` exports it for retraining as a negative, which teaches the model "
    "to answer such uploads with a low confidence. `PUT .../label` with a digit replaces it.",
    responses=problem_responses(404, 503),
)
async def set_prediction_not_a_digit(
    prediction_id: PredictionId, caller: LabelerDep, service: ServiceDep
) -> Prediction:
    record = await service.label(caller, prediction_id, None)
    return Prediction.of(record, service.thresholds)


@review_router.get(
    "",
    summary="The predictions that most need a person, least confident first",
    description="The caller's predictions whose verdict was not `digit` when they were made "
    "(`uncertain`, `not_a_digit`) and that nobody has labelled yet, from the last "
    "`MNIST_API_REVIEW_DAYS` days, least confident first. A label (`PUT "
    "/v1/predictions/{id}/label`, or `PUT .../not-a-digit`) takes an item off the queue. Keyset "
    "paging: pass `next_cursor` as `cursor` to continue.",
    responses=problem_responses(400, 503),
)
async def list_review(
    caller: ReaderDep,
    service: ServiceDep,
    limit: PageSize = 20,
    cursor: ReviewCursor = None,
    owner: Annotated[
        str | None,
        Query(
            max_length=64,
            description="another owner's queue (a key's id, or `anonymous`): admin keys only",
        ),
    ] = None,
) -> ReviewPage:
    after = decode_review_cursor(cursor) if cursor is not None else None
    page = await service.review(caller, limit=limit, after=after, owner=owner)
    thresholds = service.thresholds
    return ReviewPage(
        items=[Prediction.of(record, thresholds) for record in page.items],
        next_cursor=encode_review_cursor(page.next_after) if page.next_after else None,
    )


@router.delete(
    "/{prediction_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content type either
    summary="Delete a prediction and its image",
    responses=problem_responses(404, 503),
)
async def delete_prediction(
    prediction_id: PredictionId, caller: DeleterDep, service: ServiceDep
) -> Response:
    await service.delete(caller, prediction_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@legacy_router.post(
    "/upload",
    deprecated=True,
    summary="Recognise an uploaded digit (original endpoint)",
    description="Same as `POST /v1/predictions` but answers 200, as the original service did. "
    "New clients should use `POST /v1/predictions`.",
    responses={200: {"links": ID_LINKS}, **problem_responses(400, 413, 415, 422, 503)},
)
async def upload_legacy(file: UploadField, caller: UploaderDep, service: ServiceDep) -> Prediction:
    return Prediction.of(await service.predict(caller, file), service.thresholds)
