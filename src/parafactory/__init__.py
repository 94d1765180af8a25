"""parafactory: research parameter sweeps across every core, with curifactory's components.

>>> from parafactory import ArtifactManager, ExperimentParameters, Record, stage, aggregate
"""

from ._cache import Cacher, JoblibCacher, JsonCacher, Lazy, PickleCacher
from ._errors import (
    BackendUnavailableError,
    CacheEntryDamagedError,
    ParafactoryError,
    ParameterClassError,
    PlanError,
    PlanningStateError,
    StageDefinitionError,
    StageFailedError,
    StageInputError,
    StageOutputError,
    StageTimeoutError,
    UnpicklableOutputError,
    UnpicklableStateError,
    WorkerDiedError,
)
from ._manager import ArtifactManager
from ._parameters import ExperimentParameters
from ._records import Record
from ._stages import aggregate, stage

__all__ = [
    "ArtifactManager",
    "BackendUnavailableError",
    "CacheEntryDamagedError",
    "Cacher",
    "ExperimentParameters",
    "JoblibCacher",
    "JsonCacher",
    "Lazy",
    "ParafactoryError",
    "ParameterClassError",
    "PickleCacher",
    "PlanError",
    "PlanningStateError",
    "Record",
    "StageDefinitionError",
    "StageFailedError",
    "StageInputError",
    "StageOutputError",
    "StageTimeoutError",
    "UnpicklableOutputError",
    "UnpicklableStateError",
    "WorkerDiedError",
    "aggregate",
    "stage",
]
__version__ = "0.1.0"
