"""The run graph on its own: what is ready, running, done, failed or skipped, and why.

Plans are built by the real planner (stage calls recorded under ``planning``, as
``manager.run`` does), and the tests play the scheduler's part by hand: hand work out,
report it done, failed or lost with its worker. No workers, no files, no clocks.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from parafactory import ExperimentParameters, Record, aggregate, stage
from parafactory._core.graph import DEATHS_BEFORE_FAILING, SETTLED, RunGraph, State
from parafactory._core.plan import Planner, Step
from parafactory._model.records import planning

# -- plans --------------------------------------------------------------------------------


@dataclasses.dataclass
class Params(ExperimentParameters):
    value: int = 0


@stage(inputs=None, outputs=["a"])
def first(record):
    return 1


@stage(inputs=None, outputs=["b"])
def second(record):
    return 2


@aggregate(inputs=None, outputs=["c"])
def gather(record, records):
    return 3


def plan(experiment):
    """The steps ``experiment()`` plans (it makes its records with ``Record(None, ...)``)."""
    planner = Planner()
    with planning(planner):
        experiment()
    planner.finish()
    assert planner.problems() == []
    return planner.steps


def record(name):
    return Record(None, Params(name=name))


def step_of(steps, rec, position=0):
    """The ``position``-th step made on record ``rec``."""
    return [step for step in steps if step.record is rec][position]


def diamond():
    """A chain on ``r`` feeding two aggregates, both feeding a third."""
    made = {}

    def experiment():
        made["r"] = r = second(first(record("r")))
        made["x"] = x = gather(Record(None, None), [r])
        made["y"] = y = gather(Record(None, None), [r])
        made["z"] = gather(Record(None, None), [x, y])

    steps = plan(experiment)
    return steps, [step_of(steps, made[name]) for name in "rxyz"]


def states(graph, steps):
    return [graph.state(step.id) for step in steps]


ERROR = ValueError("stage broke")

# -- readiness and order ------------------------------------------------------------------


def test_only_steps_needing_nothing_are_ready_at_first():
    steps, (chain, x, y, z) = diamond()
    graph = RunGraph(steps)
    assert [len(step.calls) for step in (chain, x, y, z)] == [2, 1, 1, 1]  # one chain
    assert states(graph, [chain, x, y, z]) == [State.READY] + [State.WAITING] * 3
    assert graph.ready_chains() == 1 and graph.has_ready_work()
    assert graph.next_parent_step() is None  # no aggregate before the chain is done


def test_diamond_runs_each_step_once_its_needs_are_done():
    steps, (chain, x, y, z) = diamond()
    graph = RunGraph(steps)
    assert graph.next_chain() is chain
    assert graph.state(chain.id) is State.RUNNING and graph.next_chain() is None
    assert graph.done(chain.id) == [chain.record]

    assert states(graph, [x, y, z]) == [State.READY, State.READY, State.WAITING]
    assert graph.next_parent_step() is x and graph.next_parent_step() is y
    assert graph.next_parent_step() is None and not graph.has_ready_work()
    assert graph.done(x.id) == [x.record]
    assert graph.state(z.id) is State.WAITING  # still needs y
    assert graph.done(y.id) == [y.record]
    assert graph.state(z.id) is State.READY and not graph.settled

    assert graph.next_parent_step() is z
    assert graph.done(z.id) == [z.record]
    assert graph.settled and states(graph, steps) == [State.OK] * 4


def test_a_records_later_chain_waits_for_the_aggregate_that_read_it():
    made = {}

    def experiment():
        made["r"] = r = first(record("r"))
        made["x"] = gather(Record(None, None), [r])
        second(r)

    steps = plan(experiment)
    early, late = step_of(steps, made["r"], 0), step_of(steps, made["r"], 1)
    agg = step_of(steps, made["x"])
    graph = RunGraph(steps)
    assert graph.next_chain() is early and graph.next_chain() is None
    assert graph.done(early.id) == []  # r has a step left
    assert graph.state(late.id) is State.WAITING and graph.ready_chains() == 0
    assert graph.next_parent_step() is agg
    graph.done(agg.id)
    assert graph.next_chain() is late
    assert graph.done(late.id) == [made["r"]]


def test_ready_chains_counts_what_next_chain_hands_out():
    steps = plan(lambda: [first(record(f"r{i}")) for i in range(3)])
    graph = RunGraph(steps)
    assert graph.ready_chains() == 3
    handed = [graph.next_chain(), graph.next_chain()]
    assert handed == steps[:2] and graph.ready_chains() == 1
    assert graph.next_chain() is steps[2] and graph.ready_chains() == 0
    assert graph.next_chain() is None and not graph.has_ready_work()


def test_a_graph_leaves_its_plan_unchanged_for_another_graph():
    steps, (chain, x, y, z) = diamond()
    before = [(step.needs, list(step.needed_by)) for step in steps]
    first_graph = RunGraph(steps)
    first_graph.next_chain()
    first_graph.failed(chain.id, ERROR)
    assert [(step.needs, list(step.needed_by)) for step in steps] == before
    second_graph = RunGraph(steps)
    assert states(second_graph, steps) == [State.READY] + [State.WAITING] * 3


# -- failures and skips (errors="continue") -----------------------------------------------


def test_aggregate_runs_over_a_failed_record_and_a_skipped_one():
    made = {}

    def experiment():
        ok, broken, cut = (first(record(name)) for name in ("ok", "broken", "cut"))
        made["peek"] = gather(Record(None, None), [cut])  # cut's later chain waits for it
        second(cut)
        made["all"] = gather(Record(None, None), [ok, broken, cut])
        made.update(ok=ok, broken=broken, cut=cut)

    steps = plan(experiment)
    ok, broken = step_of(steps, made["ok"]), step_of(steps, made["broken"])
    cut_early, cut_late = step_of(steps, made["cut"], 0), step_of(steps, made["cut"], 1)
    peek, everything = step_of(steps, made["peek"]), step_of(steps, made["all"])
    graph = RunGraph(steps)
    assert [graph.next_chain() for _ in range(3)] == [ok, broken, cut_early]
    graph.done(ok.id)
    assert graph.failed(broken.id, ERROR) == [made["broken"]]
    assert graph.failed(cut_early.id, ERROR) == []  # cut_late is waiting on peek too
    assert graph.next_parent_step() is peek  # an aggregate reads a failed record too
    assert graph.done(peek.id) == [made["peek"], made["cut"]]  # cut_late is skipped:
    assert graph.state(cut_late.id) is State.SKIPPED and graph.why(cut_late.id) == cut_early.id
    assert graph.ready_chains() == 0
    assert graph.state(everything.id) is State.READY
    assert graph.next_parent_step() is everything
    graph.done(everything.id)
    assert graph.settled and graph.state(everything.id) is State.OK


def test_skips_say_which_failed_step_they_needed_down_a_chain_of_skips():
    made = {}

    def experiment():
        r = first(record("r"))
        made["copy"] = copy = r.make_copy(Params(name="copy"))
        gather(r, [])  # an aggregate on r itself: needs r's chain
        second(copy)
        made["r"] = r

    steps = plan(experiment)
    chain, own_aggregate = step_of(steps, made["r"], 0), step_of(steps, made["r"], 1)
    take_copy, copy_chain = step_of(steps, made["copy"], 0), step_of(steps, made["copy"], 1)
    assert take_copy.copy_of is made["r"] and take_copy.is_aggregate
    graph = RunGraph(steps)
    graph.next_chain()
    finished = graph.failed(chain.id, ERROR)
    assert {id(rec) for rec in finished} == {id(made["r"]), id(made["copy"])}
    assert states(graph, steps) == [State.FAILED] + [State.SKIPPED] * 3
    assert graph.why(chain.id) is ERROR
    for skipped in (take_copy, own_aggregate, copy_chain):
        assert graph.why(skipped.id) == chain.id  # the failed step, not the skipped one between
    assert graph.settled and not graph.has_ready_work()


def test_a_failed_aggregate_skips_its_own_records_later_steps_only():
    made = {}

    def experiment():
        made["r"] = r = first(record("r"))
        made["x"] = x = gather(Record(None, None), [r])
        second(r)  # waits for the aggregate that read r, but needs nothing it made
        first(x)

    steps = plan(experiment)
    chain, later = step_of(steps, made["r"], 0), step_of(steps, made["r"], 1)
    agg, after_agg = step_of(steps, made["x"], 0), step_of(steps, made["x"], 1)
    graph = RunGraph(steps)
    graph.done(graph.next_chain().id)
    assert graph.next_parent_step() is agg
    assert graph.failed(agg.id, ERROR) == [made["x"]]
    assert graph.state(after_agg.id) is State.SKIPPED and graph.why(after_agg.id) == agg.id
    assert graph.state(later.id) is State.READY and graph.next_chain() is later
    assert graph.done(later.id) == [made["r"]]
    assert graph.settled and graph.state(chain.id) is State.OK


def test_without_stop_a_failure_leaves_other_work_flowing():
    steps = plan(lambda: gather(Record(None, None), [first(record(f"r{i}")) for i in range(3)]))
    chains, agg = steps[:3], steps[3]
    graph = RunGraph(steps)
    graph.next_chain()
    graph.failed(chains[0].id, ERROR)
    assert graph.next_chain() is chains[1] and graph.next_chain() is chains[2]
    graph.done(chains[1].id)
    graph.done(chains[2].id)
    assert graph.next_parent_step() is agg
    graph.done(agg.id)
    assert graph.settled
    assert states(graph, steps) == [State.FAILED, State.OK, State.OK, State.OK]


# -- errors="raise": stop() ---------------------------------------------------------------


def test_after_stop_nothing_new_is_handed_out_but_running_steps_finish():
    def experiment():
        records = [first(record(f"r{i}")) for i in range(3)]
        gather(Record(None, None), records[:2])

    steps = plan(experiment)
    chains, agg = steps[:3], steps[3]
    graph = RunGraph(steps)
    assert graph.next_chain() is chains[0] and graph.next_chain() is chains[1]
    graph.stop()  # the scheduler stops before reporting the failure
    graph.failed(chains[0].id, ERROR)
    assert graph.next_chain() is None  # chains[2] was ready, is not handed out
    assert graph.state(chains[2].id) is State.READY
    assert graph.done(chains[1].id) == [chains[1].record]  # running ones may still end
    assert graph.state(chains[1].id) is State.OK
    assert graph.state(agg.id) is State.READY  # its needs settled, but it does not run
    assert graph.next_parent_step() is None and graph.next_alone() is None
    assert states(graph, steps) == [State.FAILED, State.OK, State.READY, State.READY]
    assert not graph.settled  # the scheduler reports the rest as not run


def test_after_stop_a_chain_whose_worker_died_is_not_retried():
    steps = plan(lambda: [first(record(f"r{i}")) for i in range(2)])
    graph = RunGraph(steps)
    graph.next_chain()
    graph.stop()
    assert graph.died(steps[0].id)
    assert graph.next_alone() is None and graph.next_chain() is None
    assert not graph.settled


# -- dead workers ------------------------------------------------------------------------


def test_a_chain_whose_worker_died_is_retried_alone_before_anything_else():
    steps = plan(lambda: [first(record(f"r{i}")) for i in range(3)])
    graph = RunGraph(steps)
    victim = graph.next_chain()
    assert graph.died(victim.id)
    assert graph.state(victim.id) is State.READY and graph.has_ready_work()
    assert graph.next_chain() is None  # nothing new runs beside a chain to retry alone
    assert graph.next_alone() is victim and graph.state(victim.id) is State.RUNNING
    assert graph.next_alone() is None
    assert graph.done(victim.id) == [victim.record]
    assert graph.next_chain() is steps[1]


def test_a_chain_fails_after_its_worker_died_the_allowed_number_of_times():
    steps, (chain, x, y, z) = diamond()
    graph = RunGraph(steps)
    graph.next_chain()
    for _ in range(DEATHS_BEFORE_FAILING - 1):
        assert graph.died(chain.id)
        assert graph.next_alone() is chain
    assert not graph.died(chain.id)  # the caller fails it now
    assert graph.state(chain.id) is State.RUNNING and graph.next_alone() is None
    graph.failed(chain.id, ERROR)
    assert graph.state(chain.id) is State.FAILED and graph.why(chain.id) is ERROR
    assert graph.next_parent_step() is x  # aggregates still run over what r holds


def test_deaths_are_counted_per_chain():
    steps = plan(lambda: [first(record(f"r{i}")) for i in range(2)])
    graph = RunGraph(steps)
    for step in steps:
        assert graph.next_chain() is step
    assert graph.died(steps[0].id) and graph.died(steps[1].id)  # one death each: retried
    assert graph.next_alone() is steps[0] and graph.next_alone() is steps[1]


def test_a_resent_chain_goes_first_and_is_not_counted_as_a_death():
    steps = plan(lambda: [first(record(f"r{i}")) for i in range(3)])
    graph = RunGraph(steps)
    graph.next_chain()
    lost_beside = graph.next_chain()
    graph.resend(lost_beside.id)
    assert graph.state(lost_beside.id) is State.READY
    assert graph.next_chain() is lost_beside  # ahead of steps[2]
    for _ in range(DEATHS_BEFORE_FAILING - 1):
        assert graph.died(lost_beside.id)
        graph.next_alone()


# -- cached chains: settled in the parent, never sent ----------------------------------------


def test_a_cached_chain_settles_at_once_and_releases_its_aggregate():
    made = {}

    def experiment():
        cached, computed = first(record("cached")), first(record("computed"))
        made["x"] = gather(Record(None, None), [cached])
        made["y"] = gather(Record(None, None), [cached, computed])
        made.update(cached=cached, computed=computed)

    steps = plan(experiment)
    cached, computed = step_of(steps, made["cached"]), step_of(steps, made["computed"])
    x, y = step_of(steps, made["x"]), step_of(steps, made["y"])
    graph = RunGraph(steps)
    # The scheduler takes a chain to send, finds every stage in the cache, and settles it.
    assert graph.next_chain() is cached
    assert graph.done(cached.id) == [made["cached"]]
    assert graph.next_chain() is computed  # sent to a worker
    assert graph.next_parent_step() is x  # runs while the other chain is still out
    assert graph.state(y.id) is State.WAITING
    graph.done(x.id)
    graph.done(computed.id)
    assert graph.next_parent_step() is y


def test_a_run_of_cached_chains_settles_without_any_worker():
    steps = plan(lambda: [second(first(record(f"r{i}"))) for i in range(3)])
    graph = RunGraph(steps)
    finished = []
    while (step := graph.next_chain()) is not None:
        finished += graph.done(step.id)
    assert finished == [step.record for step in steps] and graph.settled


# -- invariants over random plans and outcomes -----------------------------------------------


def random_experiment(rng):
    """Records, stages, aggregates (on new records or existing ones) and copies, mixed."""

    def experiment():
        records = [record(f"r{i}") for i in range(4)]
        for i in range(14):
            kind = rng.choice(["stage", "stage", "aggregate", "copy"])
            if kind == "stage":
                rng.choice([first, second])(rng.choice(records))
            elif kind == "aggregate":
                on = rng.choice([*records, Record(None, None)])
                gather(on, rng.sample(records, rng.randint(1, len(records))))
                records += [] if on in records else [on]
            else:
                records.append(rng.choice(records).make_copy(Params(name=f"copy{i}")))

    return experiment


class Driver:
    """Plays a scheduler with random outcomes, checking the graph after every event."""

    def __init__(self, steps, rng):
        self.steps, self.rng, self.graph = steps, rng, RunGraph(steps)
        self.needs = {step.id: [] for step in steps}
        for step in steps:
            for later in step.needed_by:
                self.needs[later].append(step)
        self.running: list[Step] = []
        self.finished: list[Record] = []

    def hand_out(self):
        graph = self.graph
        taken = []
        while (step := graph.next_parent_step()) is not None:
            taken.append(step)
        if not self.running and (step := graph.next_alone()) is not None:
            taken.append(step)
        while self.rng.random() < 0.7 and (step := graph.next_chain()) is not None:
            taken.append(step)
        for step in taken:
            assert all(graph.state(need.id) in SETTLED for need in self.needs[step.id])
        self.running += taken

    def end_one(self):
        step = self.running.pop(self.rng.randrange(len(self.running)))
        roll = self.rng.random()
        if not step.is_aggregate and roll < 0.1:
            self.graph.resend(step.id)
        elif not step.is_aggregate and roll < 0.3 and self.graph.died(step.id):
            return
        elif roll < 0.5:
            self.finished += self.graph.failed(step.id, ERROR)
        else:
            self.finished += self.graph.done(step.id)

    def check(self):
        graph = self.graph
        for step in self.steps:
            needs_settled = all(graph.state(n.id) in SETTLED for n in self.needs[step.id])
            if graph.state(step.id) is State.WAITING:
                assert not needs_settled, f"step {step.id} was forgotten"
            else:
                assert needs_settled, f"step {step.id} left waiting before its needs settled"
        assert graph.settled == all(graph.state(s.id) in SETTLED for s in self.steps)

    def run(self):
        for _ in range(10 * len(self.steps) + 50):
            self.hand_out()
            self.check()
            if not self.running:
                assert graph_is_done_or_stalled(self.graph)
                return
            self.end_one()
            self.check()
        pytest.fail("the run did not end")


def graph_is_done_or_stalled(graph):
    assert not graph.has_ready_work() or graph.ready_chains()  # only chains may be left ready
    return graph.settled or graph.ready_chains() > 0


@pytest.mark.parametrize("seed", range(40))
def test_random_runs_keep_the_graphs_invariants(seed):
    rng = random.Random(seed)
    steps = plan(random_experiment(rng))
    driver = Driver(steps, rng)
    while not driver.graph.settled:
        driver.run()
    graph = driver.graph
    final = [graph.state(step.id) for step in steps]
    assert all(state in SETTLED for state in final)
    assert len(driver.finished) == len({id(r) for r in driver.finished})  # each once
    assert {id(r) for r in driver.finished} == {id(step.record) for step in steps}
    for step in steps:
        check_final_state(graph, step, driver.needs[step.id])


def check_final_state(graph, step, needs):
    """A step is skipped exactly when a step of its own record (or of the record it
    copies) did not end well; a skip names a failed step; a failure has its error."""
    own = [n for n in needs if n.record in (step.record, step.copy_of)]
    state = graph.state(step.id)
    if any(graph.state(n.id) is not State.OK for n in own):
        assert state is State.SKIPPED
        assert graph.state(graph.why(step.id)) is State.FAILED
    elif state is State.FAILED:
        assert graph.why(step.id) is ERROR
    else:
        assert state is State.OK and graph.why(step.id) is None
