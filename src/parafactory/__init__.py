"""parafactory: research parameter sweeps across every core, with curifactory's components.

>>> from parafactory import ArtifactManager, ExperimentParameters, Record, stage, aggregate
"""

from ._errors import (
    BackendUnavailableError,
    CacheEntryDamagedError,
    DisplayUnavailableError,
    ParafactoryError,
    ParameterClassError,
    PlanError,
    PlanningStateError,
    ReporterUnavailableError,
    SharedFilesError,
    StageDefinitionError,
    StageFailedError,
    StageInputError,
    StageOutputError,
    StageTimeoutError,
    UnpicklableOutputError,
    UnpicklableStateError,
    UpstreamFailedError,
    WorkerDiedError,
)
from ._manager import ArtifactManager
from ._model.cache import Cacher, FileReferenceCacher, JoblibCacher, JsonCacher, Lazy, PickleCacher
from ._model.parameters import ExperimentParameters, set_hash_functions
from ._model.records import Record
from ._model.reportables import (
    DFReporter,
    FigureReporter,
    HTMLReporter,
    ImageReporter,
    JsonReporter,
    LatexTableReporter,
    LinePlotReporter,
    Reportable,
)
from ._model.stages import aggregate, stage

__all__ = [
    "ArtifactManager",
    "BackendUnavailableError",
    "CacheEntryDamagedError",
    "Cacher",
    "DFReporter",
    "DisplayUnavailableError",
    "ExperimentParameters",
    "FigureReporter",
    "FileReferenceCacher",
    "HTMLReporter",
    "ImageReporter",
    "JoblibCacher",
    "JsonCacher",
    "JsonReporter",
    "LatexTableReporter",
    "Lazy",
    "LinePlotReporter",
    "ParafactoryError",
    "ParameterClassError",
    "PickleCacher",
    "PlanError",
    "PlanningStateError",
    "Record",
    "Reportable",
    "ReporterUnavailableError",
    "SharedFilesError",
    "StageDefinitionError",
    "StageFailedError",
    "StageInputError",
    "StageOutputError",
    "StageTimeoutError",
    "UnpicklableOutputError",
    "UnpicklableStateError",
    "UpstreamFailedError",
    "WorkerDiedError",
    "aggregate",
    "set_hash_functions",
    "stage",
]
__version__ = "0.1.0"
