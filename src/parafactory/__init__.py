"""parafactory: research parameter sweeps across every core, with curifactory's components.

>>> from parafactory import ArtifactManager, ExperimentParameters, Record, stage, aggregate
"""

from ._cache import Cacher, JoblibCacher, JsonCacher, Lazy, PickleCacher
from ._errors import (
    BackendUnavailableError,
    ParafactoryError,
    PlanningStateError,
    StageDefinitionError,
    StageFailedError,
    StageInputError,
    StageOutputError,
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
    "Cacher",
    "ExperimentParameters",
    "JoblibCacher",
    "JsonCacher",
    "Lazy",
    "ParafactoryError",
    "PickleCacher",
    "PlanningStateError",
    "Record",
    "StageDefinitionError",
    "StageFailedError",
    "StageInputError",
    "StageOutputError",
    "UnpicklableStateError",
    "WorkerDiedError",
    "aggregate",
    "stage",
]
__version__ = "0.1.0"
