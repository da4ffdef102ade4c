"""`Stabilize`: turn the code successful runs wrote into a library, and a solver when one function solves the task.

    compiled = Stabilize(metric=metric).compile(program, trainset=train, valset=dev)

1. Run the program on `trainset`; harvest the functions the runs scoring at least `threshold`
   defined (`dspy_rlm.library.harvest`: self-contained, documented, deduplicated).
2. Validate on `valset` in the sandbox: with the candidates loaded (their calls recorded), a
   candidate the runs never call is rejected; if the held-out score drops, each called candidate
   is tried alone and those that lower the score are rejected.
3. An accepted function that takes only inputs of the task becomes `solve.py` if, as the solver,
   it keeps the held-out score: those calls then end with no root-model call.
4. The recorded calls become each function's regression tests; the program comes back with
   the library attached to every `RLM` inside it (`compiled.stabilize_report` says what happened).

It composes with the other optimizers: it changes no instructions or demos, only the library.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import dspy
from dspy.teleprompt.teleprompt import Teleprompter

from dspy_rlm.core.rlm import RLM
from dspy_rlm.core.tools import is_reserved
from dspy_rlm.library import (
    SOLVER, CallRecorder, Candidate, CodeLibrary, LibraryFunction, Provenance, candidates_from_steps, chosen_tests,
    library_function, solver_code,
)
from dspy_rlm.optimizers.passes import Pass, run_pass, runs_from_traces


@dataclass
class Decision:
    """What became of one candidate."""

    name: str
    accepted: bool
    reason: str
    runs: list[str] = field(default_factory=list)
    calls: int = 0


@dataclass
class StabilizeReport:
    """Everything a `Stabilize.compile` decided and measured (held-out figures are on `valset`)."""

    decisions: list[Decision] = field(default_factory=list)
    solver: str | None = None
    solver_reason: str = ""
    passes: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def accepted(self) -> list[str]:
        return [d.name for d in self.decisions if d.accepted]

    @property
    def rejected(self) -> dict[str, str]:
        return {d.name: d.reason for d in self.decisions if not d.accepted}

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected, "solver": self.solver,
                "solver_reason": self.solver_reason, "passes": self.passes,
                "decisions": [asdict(d) for d in self.decisions]}


class Stabilize(Teleprompter):
    """Harvest, validate and attach a code library (see the module docstring).

    Args:
        metric: `metric(example, prediction) -> float` (or a Prediction with `score`).
        threshold: runs scoring at least this are harvested.
        tolerance: how far the held-out score may drop before a candidate is rejected.
        library: a library to start from (default: the first RLM's, or an empty one).
        program_name, date: recorded in each harvested file's header (date: today, UTC).
        solver: offer a `solve.py` when a function solves the whole task.
        num_threads: examples run at once in each pass.
    """

    def __init__(self, metric: Callable[..., Any], *, threshold: float = 1.0, tolerance: float = 0.0,
                 library: CodeLibrary | None = None, program_name: str = "", date: str | None = None,
                 solver: bool = True, num_threads: int = 1):
        super().__init__()
        self.metric, self.threshold, self.tolerance = metric, threshold, tolerance
        self.library, self.program_name, self.solver, self.num_threads = library, program_name, solver, num_threads
        self.date = date or datetime.datetime.now(datetime.UTC).date().isoformat()

    def compile(self, student: dspy.Module, *, trainset: list[dspy.Example], valset: list[dspy.Example] | None = None,
                teacher: Any = None, traces: list[str] | None = None, **kwargs: Any) -> dspy.Module:
        """A copy of `student` with the stabilized library on every RLM inside it (`valset` defaults to
        `trainset`, which then is not held out).

        `traces`: MLflow trace ids of earlier scored calls (the active store) to harvest from as well."""
        program = student.deepcopy()
        rlms = _rlms(program)
        if not rlms:
            raise ValueError("Stabilize needs a program with at least one dspy_rlm.RLM inside it")
        valset = valset or trainset
        start = self.library or rlms[0].library or CodeLibrary()
        self._program_name = self.program_name or _signature_text(rlms[0])  # this compile's; the setting stays
        report = StabilizeReport()
        train = self._pass(program, start, trainset, "train", report)
        reserved = {*rlms[0].signature.input_fields, *start.names, SOLVER}
        harvested = train.harvested() + (runs_from_traces(traces) if traces else [])
        candidates = [c for c in candidates_from_steps(harvested, self.threshold) if c.name not in reserved
                      and not is_reserved(c.name)]
        baseline = self._pass(program, start, valset, "baseline", report)
        library, recorder = self._validate(program, start, candidates, valset, baseline, report)
        if self.solver:
            library = self._offer_solver(program, library, valset, baseline, recorder, rlms[0], report)
        tests = {name: calls for name, calls in chosen_tests(recorder.calls).items() if name in library}
        library = library.with_tests(tests)
        _attach(program, library)
        program.stabilize_report = report
        return program

    # -- the steps -------------------------------------------------------

    def _pass(self, program: dspy.Module, library: CodeLibrary, examples: list[dspy.Example], name: str,
              report: StabilizeReport) -> Pass:
        _attach(program, library)
        done = run_pass(program, examples, self.metric, name, self.num_threads)
        report.passes[name] = done.summary()
        return done

    def _validate(self, program: dspy.Module, start: CodeLibrary, candidates: list[Candidate],
                  valset: list[dspy.Example], baseline: Pass, report: StabilizeReport
                  ) -> tuple[CodeLibrary, CallRecorder]:
        recorder = CallRecorder()
        usable = {}
        for candidate in candidates:
            if candidate.problem is not None:
                report.decisions.append(Decision(candidate.name, False, candidate.problem, list(candidate.runs)))
                continue
            try:
                usable[candidate.name] = (candidate, self._function(candidate))
            except ValueError as problem:  # the library's own rules (LibraryError)
                report.decisions.append(Decision(candidate.name, False, str(problem), list(candidate.runs)))
        if not usable:
            return start, recorder
        pool, lowered = dict(usable), {}
        while True:  # drop what lowers the score, then check again: the others may be called now
            recorder = CallRecorder()
            together = start.adding(*(f for _, f in pool.values()))
            with_all = self._pass(program, together.recording(recorder), valset, "with_candidates", report)
            counts = recorder.counts()
            if with_all.score >= baseline.score - self.tolerance:
                break
            culprits = {}
            for name in sorted(n for n in pool if counts.get(n)):
                alone = self._pass(program, start.adding(pool[name][1]), valset, f"with_{name}", report)
                if alone.score < baseline.score - self.tolerance:
                    culprits[name] = (f"lowered the held-out score from {baseline.score:.3f} to {alone.score:.3f}",
                                      counts[name])
            if not culprits:  # only together do they lower it: keep none of the called ones
                culprits = {n: ("lowered the held-out score together with the others "
                                f"({baseline.score:.3f} -> {with_all.score:.3f})", counts[n]) for n in pool if counts.get(n)}
            if not culprits:  # lower, yet none was called (the listing alone changed the runs): keep none
                culprits = {n: ("the held-out score dropped with the library listed "
                                f"({baseline.score:.3f} -> {with_all.score:.3f}), and it was never called", 0)
                            for n in pool}
            lowered.update(culprits)
            pool = {name: pair for name, pair in pool.items() if name not in culprits}
            if not pool:
                break
        for name, (reason, calls) in sorted(lowered.items()):
            report.decisions.append(Decision(name, False, reason, list(usable[name][0].runs), calls))
        accepted = []
        for name, (candidate, function) in sorted(pool.items()):
            if not counts.get(name):
                report.decisions.append(Decision(name, False, "never called by the validation runs",
                                                 list(candidate.runs)))
                continue
            reason = (f"called {counts[name]} time(s) by the validation runs; held-out score "
                      f"{baseline.score:.3f} -> {with_all.score:.3f}")
            report.decisions.append(Decision(name, True, reason, list(candidate.runs), counts[name]))
            accepted.append(self._function(candidate, calls=counts[name]))
        return start.adding(*accepted), recorder

    def _offer_solver(self, program: dspy.Module, library: CodeLibrary, valset: list[dspy.Example], baseline: Pass,
                      recorder: CallRecorder, rlm: RLM, report: StabilizeReport) -> CodeLibrary:
        inputs, outputs = list(rlm.signature.input_fields), list(rlm.signature.output_fields)
        best: tuple[float, float, CodeLibrary, str] | None = None
        for name in library.names:
            source = library.functions[name].source
            if name == SOLVER or not source.required or not set(source.parameters) <= set(inputs):
                continue
            results = [c.result for c in recorder.calls if c.function == name]
            returns_outputs = bool(results) and all(isinstance(r, dict) and set(outputs) <= set(r) for r in results)
            if not returns_outputs and len(outputs) != 1:
                continue
            solve = library_function(solver_code(name, source.required, inputs, outputs, returns_outputs),
                                     self._provenance(runs=[f"solver over {name}"]))
            trial = library.adding(solve)
            done = self._pass(program, trial.recording(recorder), valset, f"solver_{name}", report)
            if done.score >= baseline.score - self.tolerance and (best is None or (done.score, -done.per_task("root_calls"))
                                                                 > (best[0], best[1])):
                best = (done.score, -done.per_task("root_calls"), trial, name)
        if best is None:
            report.solver_reason = "no accepted function solves the whole task without lowering the held-out score"
            return library
        report.solver = best[3]
        report.solver_reason = f"solve() calls {best[3]}: held-out score {baseline.score:.3f} -> {best[0]:.3f}"
        return best[2]

    # -- helpers ----------------------------------------------------------

    def _function(self, candidate: Candidate, calls: int = 0) -> LibraryFunction:
        return library_function(candidate.code, self._provenance(runs=list(candidate.runs), score=candidate.score,
                                                                  calls=calls), where=f"<harvest {candidate.name}>")

    def _provenance(self, runs: list[str], score: float | None = None, calls: int = 0) -> Provenance:
        return Provenance(program=self._program_name, run=", ".join(runs[:3]) + (" ..." if len(runs) > 3 else ""),
                          date=self.date, score="" if score is None else f"{score:g}",
                          calls=str(calls) if calls else "")


def _signature_text(rlm: RLM) -> str:
    return f"{', '.join(rlm.signature.input_fields)} -> {', '.join(rlm.signature.output_fields)}"


def _rlms(program: dspy.Module) -> list[RLM]:
    found = [module for _, module in program.named_sub_modules() if isinstance(module, RLM)]
    return found or ([program] if isinstance(program, RLM) else [])


def _attach(program: dspy.Module, library: CodeLibrary) -> None:
    """Put `library` on every RLM in `program` (an attribute of each instance; the next call uses it).

    The solver answers the first RLM's task: an RLM of another task (other inputs or outputs) gets the
    functions without `solve.py`."""
    rlms = _rlms(program)
    task = _task(rlms[0]) if rlms else None
    for rlm in rlms:
        own = library if _task(rlm) == task else library.without(SOLVER)
        rlm.library = own if len(own) else None


def _task(rlm: RLM) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(rlm.signature.input_fields), tuple(rlm.signature.output_fields)
