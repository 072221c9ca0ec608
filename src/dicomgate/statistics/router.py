"""``GET /api/ris/statistics/``: storage statistics (thin route)."""

from __future__ import annotations

from fastapi import APIRouter

from dicomgate.dependencies import OrthancDep, SessionDep
from dicomgate.errors import ORTHANC_ERRORS, error_responses
from dicomgate.statistics import service
from dicomgate.statistics.schemas import StorageStatistics

router = APIRouter(prefix="/api/ris", tags=["statistics"])


@router.get(
    "/statistics/",
    response_model=StorageStatistics,
    summary="Storage statistics: Orthanc's counts and size, bytes saved, HTJ2K share",
    operation_id="getStorageStatistics",
    responses=error_responses(*ORTHANC_ERRORS),
)
async def get_statistics(orthanc: OrthancDep, session: SessionDep) -> StorageStatistics:
    """One Orthanc call (``/statistics``) and one grouped query over what dicomgate wrote."""
    return await service.storage_statistics(session, orthanc)
