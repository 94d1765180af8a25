"""The public API: __all__ is complete and sorted, errors share one root."""

import inspect
import subprocess
import sys

import parafactory


def test_all_is_sorted_and_every_name_exists():
    assert parafactory.__all__ == sorted(parafactory.__all__)
    missing = [name for name in parafactory.__all__ if not hasattr(parafactory, name)]
    assert missing == []


def test_every_public_class_and_function_is_in_all():
    public = {
        name
        for name, value in vars(parafactory).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith("parafactory")
    }
    assert public - set(parafactory.__all__) == set()


def test_exceptions_derive_from_parafactory_error():
    exceptions = [
        getattr(parafactory, name)
        for name in parafactory.__all__
        if inspect.isclass(getattr(parafactory, name))
        and issubclass(getattr(parafactory, name), BaseException)
    ]
    assert len(exceptions) >= 5
    assert all(issubclass(cls, parafactory.ParafactoryError) for cls in exceptions)


def test_importing_parafactory_leaves_heavy_modules_for_later():
    # Every worker process imports parafactory as it starts; numpy (through joblib) and
    # tqdm load only when a run uses them.
    code = "import sys, parafactory; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert all(f"'{heavy}'" not in loaded for heavy in ("numpy", "joblib", "tqdm")), loaded
