"""``ServiceDep``: the lifespan's prediction service; and the caller of each operation, made from
the principal that the keys subject hands over once it holds the operation's scope."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from mnist_api.keys import Deleter, Labeler, Predictor, Principal, Reader
from mnist_api.predictions.records import Caller, Owner
from mnist_api.predictions.service import PredictionService


async def get_service(request: Request) -> PredictionService:
    return cast(PredictionService, request.state.predictions)


def caller_of(principal: Principal) -> Caller:
    """The predictions' view of a principal: its owner (with the rate that bounds its
    uploads), and whether it sees every owner's predictions."""
    return Caller(Owner(principal.owner, principal.rate, principal.burst), principal.admin)


async def _uploader(principal: Predictor) -> Caller:
    return caller_of(principal)


async def _reader(principal: Reader) -> Caller:
    return caller_of(principal)


async def _labeler(principal: Labeler) -> Caller:
    return caller_of(principal)


async def _deleter(principal: Deleter) -> Caller:
    return caller_of(principal)


ServiceDep = Annotated[PredictionService, Depends(get_service)]
UploaderDep = Annotated[Caller, Depends(_uploader)]
ReaderDep = Annotated[Caller, Depends(_reader)]
LabelerDep = Annotated[Caller, Depends(_labeler)]
DeleterDep = Annotated[Caller, Depends(_deleter)]
