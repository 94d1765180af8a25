"""parafactory: research parameter sweeps across every core, with curifactory's components.

>>> from parafactory import ArtifactManager, ExperimentParameters, Record, stage, aggregate
"""

from ._errors import (
    BackendUnavailableError,
    ParafactoryError,
    PlanningStateError,
    RunInterruptedError,
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
    "ExperimentParameters",
    "ParafactoryError",
    "PlanningStateError",
    "Record",
    "RunInterruptedError",
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
