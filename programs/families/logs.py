"""Station logs: a two-hop lookup inside each of many documents, aggregated across them (depth pays).

The context is `list[str]`, one log per weather station: a header naming the station,
a reading for every day, crew notes, and two maintenance notes: the sensor "was
recalibrated on day D" (the fact) and "a recalibration planned for day E was postponed"
(a decoy, which comes first in about half the logs). The question: which station had
the highest reading on the day its own sensor was recalibrated? Each log needs its own
two-step search (find the day, then that day's reading) before the answers can be
compared, which is what a child run (`rlm_query`, `max_depth=2`) is for.

`LogsWorld` is the simulated model's knowledge of the family. Its sub-model reads one
fact at a time reliably, but asked the whole two-hop question about a log in one prompt
it takes the first recalibration day the log mentions: right when the fact comes first,
wrong (the decoy's day) otherwise. That is the simulated model's stated weakness, and
the reason its depth-2 strategy (one child run per log, which searches in two steps)
scores higher; every figure this family gives is simulated.
"""

from __future__ import annotations

import random
import re
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import NONE, Stage, TaskPlan, split_prompt
from dspy_rlm.programs.families.base import Task, TaskFamily, check_size

SYLLABLES = "ar bel cor dal en fal gar hal kel lor mar nor pel quen ral sel tor val ven wyn".split()
CREW_NOTES = ("Crew note: the {noun} needed attention.", "Crew note: visitors asked about the {noun}.",
              "Crew note: the {noun} was painted.", "Crew note: wind rattled the {noun} all night.")
NOUNS = "mast fence shelter gate antenna roof ladder path beacon shed".split()
HEADER = "Station {name} log"
READING = "Day {day}: reading {value}."
FACT = "Maintenance: the sensor was recalibrated on day {day}."
DECOY = "Maintenance: a recalibration planned for day {day} was postponed."
QUESTION = ("Each station log notes the day its sensor was recalibrated. Which station had the highest reading on "
            "that day? Answer with the station's name only.")
CHILD_PROMPT = ("Find the reading logged on the day this station's sensor was recalibrated. "
                "Answer with the number only.")
ROOT_ASK = ("For each station log in the text, what reading was logged on the day its sensor was recalibrated? "
            "Reply with one line '<station>: <reading>' per log, or NONE.")
DAY_ASK = "On which day was the sensor recalibrated? Reply with the day number only, or NONE."
VALUE_ASK = "What reading was logged on day {entity}? Reply with the number only, or NONE."
_HEADER = re.compile(r"^Station (\w+) log$", re.MULTILINE)
_READING = re.compile(r"^Day (\d+): reading (\d+)\.$", re.MULTILINE)
_FACT = re.compile(r"was recalibrated on day (\d+)\.")
_ANY_RECALIBRATION = re.compile(r"recalibrat\w* (?:planned for |on )day (\d+)")
_VALUE_ASK = re.compile(r"^What reading was logged on day (\d+)\?")

NAMES_CODE = "names = [u.split('\\n')[0].removeprefix('Station ').removesuffix(' log') for u in units]"
BEST = ("best = max(((float(v), n) for n, v in readings.items() if str(v).replace('.', '', 1).isdigit()), "
        "default=(0.0, 'unknown'))\nanswer = best[1]")


class LogsFamily(TaskFamily):
    """Which station had the highest reading on its own recalibration day (8-16 logs)."""

    name = "logs"
    description = "a two-hop search inside each of many logs, compared across them (depth 2 pays)"

    def make_task(self, size: int, seed: int) -> Task:
        check_size(size)
        rng = random.Random(seed)
        count = max(2, min(rng.randint(8, 16), size // 250))  # the smallest sizes hold fewer logs
        names = rng.sample([f"{a}{b}".capitalize() for a in SYLLABLES for b in SYLLABLES if a != b], count)
        logs, truth = [], {}
        for name in names:
            log, truth[name] = _log(rng, name, size // count)
            logs.append(log)
        best = max(truth, key=lambda n: (truth[n], n))
        return Task(context=logs, query=QUESTION, answer=best, meta={"readings": truth})

    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        said = str(answer).strip().strip(".").strip()
        if said == gold.answer:
            return 1.0, f"Correct: {gold.answer} had the highest reading ({gold.readings[gold.answer]}) on its day."
        if said in gold.readings:
            return 0.0, (f"Expected {gold.answer} ({gold.readings[gold.answer]}); {said}'s reading on its own "
                         f"recalibration day was {gold.readings[said]}. Check each log's day before comparing.")
        return 0.0, f"Expected the station {gold.answer}; {said[:80]!r} names no station."

    def world(self) -> LogsWorld:
        return LogsWorld()

    def advice(self) -> str:
        return ("Each log needs two lookups (its recalibration day, then that day's reading), and a postponed "
                "recalibration is not one: search each log on its own, with rlm_query if it is available.")


def _log(rng: random.Random, name: str, size: int) -> tuple[str, int]:
    """One station's log of about `size` characters, and its reading on the recalibration day."""
    lines, values, chars = [], {}, len(HEADER.format(name=name)) + 120  # the two notes take about 120
    while chars < size or len(values) < 2:
        if values and rng.random() < 0.15:
            line = rng.choice(CREW_NOTES).format(noun=rng.choice(NOUNS))
        else:
            day = len(values) + 1
            values[day] = rng.randint(100, 999)
            line = READING.format(day=day, value=values[day])
        lines.append(line)
        chars += len(line) + 1
    fact_day, decoy_day = rng.sample(sorted(values), 2)
    first, second = sorted(rng.sample(range(len(lines) + 1), 2))
    notes = [DECOY.format(day=decoy_day), FACT.format(day=fact_day)]
    if rng.random() < 0.5:  # the fact first in about half the logs
        notes.reverse()
    lines.insert(second, notes[1])
    lines.insert(first, notes[0])
    return "\n".join([HEADER.format(name=name), *lines]), values[fact_day]


class LogsWorld:
    """The simulated model's knowledge of station logs (see the module docstring for its weakness)."""

    name = "logs"

    def plan(self, question: str) -> TaskPlan | None:
        if question.startswith("Each station log notes the day"):
            return TaskPlan(
                stages=(Stage(ask=ROOT_ASK, keywords=r"recalibrat|^Station |^Day \d+"),),
                combine=("readings = {}\nfor reply in replies:\n    for line in reply.splitlines():\n"
                         "        station, _, value = line.partition(': ')\n"
                         "        if value.strip().isdigit():\n            readings[station.strip()] = value.strip()\n"
                         + BEST),
                guess="units[0].split('\\n')[0].removeprefix('Station ').removesuffix(' log')",
                units="[str(u) for u in context] if not isinstance(context, str) else context.split('\\n\\n')",
                delegate=CHILD_PROMPT,
                delegate_combine=f"{NAMES_CODE}\nreadings = dict(zip(names, replies))\n{BEST}",
            )
        if question.startswith("Find the reading logged on the day this station's sensor"):
            return TaskPlan(
                stages=(Stage(ask=DAY_ASK, keywords=r"recalibrat"), Stage(ask=VALUE_ASK, keywords=r"^Day {entity}:")),
                combine="answer = pick(replies)",
                guess="'unknown'",
            )
        return None

    def answer(self, prompt: str, mistake: bool = False) -> str:
        question, text = split_prompt(prompt)
        if question == DAY_ASK:
            found = _FACT.search(text)
            return found.group(1) if found and not mistake else NONE
        if (asked := _VALUE_ASK.match(question)) is not None:
            value = dict(_READING.findall(text)).get(asked.group(1))
            return value if value and not mistake else NONE
        if question == ROOT_ASK:
            return "\n".join(_first_mention_reading(log, mistake) for log in _split_logs(text)) or NONE
        return NONE


def _split_logs(text: str) -> list[str]:
    starts = [m.start() for m in _HEADER.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _first_mention_reading(log: str, mistake: bool) -> str:
    """The two-hop question read in one go: the reading on the first recalibration day the log mentions."""
    name = _HEADER.search(log).group(1)
    mention = _ANY_RECALIBRATION.search(log)
    value = dict(_READING.findall(log)).get(mention.group(1)) if mention else None
    if value is None or mistake:
        return f"{name}: {NONE}"
    return f"{name}: {value}"
