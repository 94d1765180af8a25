"""ArtifactManager: run numbers, timestamp, log file, records, report, dry runs."""

import dataclasses
import datetime
import logging

from parafactory import ArtifactManager, ExperimentParameters, Record, aggregate, stage


@dataclasses.dataclass
class Params(ExperimentParameters):
    value: int = 0


@stage(inputs=None, outputs=["number"])
def number(record):
    return record.params.value


@aggregate(inputs=["number"], outputs=["total"])
def add_up(record, records, number):
    return sum(number.values())


def test_run_numbers_increase_per_name(make_manager):
    managers = [make_manager(name) for name in ["alpha", "alpha", "beta"]]
    assert [m.run_number for m in managers] == [1, 2, 1]
    assert all(isinstance(m.timestamp, datetime.datetime) for m in managers)


def test_log_file_receives_messages_until_closed(make_manager, tmp_path):
    manager = make_manager("logged")
    try:
        logging.getLogger("parafactory").info("hello from the test")
        assert manager.log_path.parent == tmp_path / "logs"
        assert "hello from the test" in manager.log_path.read_text()
    finally:
        manager.close()
    logging.getLogger("parafactory").info("after closing")
    assert "after closing" not in manager.log_path.read_text()


def test_records_in_order_and_report_names_them(make_manager, tmp_path):
    manager = make_manager("report")
    records = [number(Record(manager, Params(name=n, value=i))) for i, n in enumerate("pqr")]
    final = add_up(Record(manager, None))
    assert manager.records == [*records, final]
    path = manager.write_report()
    assert path.is_file() and tmp_path / "reports" in path.parents
    text = path.read_text()
    for name in ["p", "q", "r"]:
        assert f"data-record='{name}'" in text
    assert "report" in text


def test_dry_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = ArtifactManager("dry", dry=True)
    try:
        assert manager.run_number == 1
        records = [number(Record(manager, Params(name=f"d{i}", value=i))) for i in range(3)]
        final = add_up(Record(manager, None), records)
        assert final.state["total"] == 3
        logging.getLogger("parafactory").warning("a dry warning")
        manager.write_report()
    finally:
        manager.close()
    assert list(tmp_path.iterdir()) == []
