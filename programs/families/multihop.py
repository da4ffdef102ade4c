"""Multi-hop questions over a collection of documents (a BrowseComp-Plus-like analogue).

A seeded fictional world of dishes, festivals, towns, competitions and
people; the context is `list[str]`, one encyclopedia-style document each.
A question follows a chain of 2-4 hops: dish -> festival named after it ->
town hosting it -> competition held there -> that competition's winner in a
given year. Hard negatives: towns with near-duplicate names and their own
competitions, a festival named after a similar dish, and the same
competition's winners in other years. Scored by exact match of the name.

`MultiHopWorld` is the simulated model's knowledge of the family, including the
outer steps of the example program `dspy_rlm.programs.research` (which knows
nothing of the simulated model).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import NONE, Stage, TaskPlan, split_prompt
from dspy_rlm.programs.families.base import Task, TaskFamily, check_size

SYLLABLES = "al ar bel bran cor dal del en fal gar hal is kel lor mar mel nor or pel quen ral sel tor ul val ven wyn yar zen ost".split()
DISHES = "stew tart dumplings bread pie broth cake fritters".split()
FESTIVALS = ("Lantern Fair", "Harvest Days", "Bell Festival", "Tide Feast", "Ember Nights", "Kite Week")
CONTESTS = ("Regatta", "Chess Open", "Sheepdog Trials", "Rowing Cup", "Fiddle Contest", "Bake-off")
MONTHS = "March April May June July August".split()
NAME = r"[A-Z][\w'-]*(?: [A-Z][\w'-]*)*"
SLOTS = {"festival": NAME, "town": NAME, "competition": NAME, "person": NAME, "dish": r"[a-z]+(?: [a-z-]+)*",
         "year": r"\d{4}", "month": r"[A-Z][a-z]+"}
FACTS = {
    "named_after": ("The {festival} takes its name from {dish}, a local dish.",
                    "Named after the dish {dish}, the {festival} draws crowds every year.",
                    "The {festival} honours {dish}, the dish it is named after."),
    "hosts": ("Each {month}, {town} hosts the {festival}.", "The {festival} is held every year in {town}.",
              "{town} is where the {festival} takes place."),
    "home_of": ("{town} is home to the {competition}.", "The {competition} takes place in {town}.",
                "Every year the {competition} is staged in {town}."),
    "won": ("{person} won the {year} {competition}.", "In {year}, {person} took first place at the {competition}.",
            "The {year} {competition} was won by {person}."),
}
FILLER = ("Visitors remember the {noun} and the {noun2}.", "Local records mention a {noun} from the old days.",
          "Its archive keeps letters about the {noun}.", "Many describe the {noun} as unforgettable.",
          "The surrounding hills are known for {noun2}.")
NOUNS = "bridge orchard market harbor choir lighthouse mill quarry ferry library garden tower".split()
ASKS = {
    "festival": "Which festival is named after the dish {entity}? Reply with the festival's name only, or NONE.",
    "town": "Which town hosts the {entity}? Reply with the town's name only, or NONE.",
    "competition": "Which competition takes place in {entity}? Reply with the competition's name only, or NONE.",
    "person": "Who won the {entity} in {year}? Reply with the person's name only, or NONE.",
}
QUESTIONS = {
    4: ("A festival is named after the dish {dish}. The town that hosts that festival is home to a competition. "
        "Who won that competition in {year}? Answer with the person's name only."),
    3: ("The {festival} is hosted by a town that is home to a competition. Who won that competition in {year}? "
        "Answer with the person's name only."),
    2: "{town} is home to a competition. Who won that competition in {year}? Answer with the person's name only.",
}
_QUESTION = {4: re.compile(rf"named after the dish ({SLOTS['dish']})\. .* in (\d{{4}})\?"),
             3: re.compile(rf"^The ({NAME}) is hosted by a town .* in (\d{{4}})\?"),
             2: re.compile(rf"^({NAME}) is home to a competition\. .* in (\d{{4}})\?")}
_ASK = {kind: re.compile("^" + re.escape(ask).replace(r"\{entity\}", "(.+?)").replace(r"\{year\}", r"(\d{4})") + "$")
        for kind, ask in ASKS.items()}


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(f"(?P<{p[1:-1]}>{SLOTS[p[1:-1]]})" if p.startswith("{") else re.escape(p) for p in parts))


_PASSAGE_TAG = re.compile(r"^\[doc (\d+)\]", re.MULTILINE)  # ResearchQA's passages start with their tag
_FACT_PATTERNS = [(relation, _pattern(t)) for relation, templates in FACTS.items() for t in templates]


def read_facts(text: str) -> list[tuple[str, dict[str, str]]]:
    """Every fact sentence in `text`, as (relation, slots): the sub-model's "understanding"."""
    facts = []
    for sentence in re.split(r"(?<=\.)\s+|\n+", text):
        for relation, pattern in _FACT_PATTERNS:
            found = pattern.fullmatch(sentence.strip())
            if found:
                facts.append((relation, found.groupdict()))
                break
    return facts


@dataclass
class Chain:
    dish: str
    festival: str
    town: str
    competition: str
    winners: dict[int, str]
    docs: dict[str, str] = field(default_factory=dict)  # role -> document text


class _Names:
    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def word(self, syllables: int = 2) -> str:
        """A fresh made-up word; longer once short ones keep colliding (large worlds)."""
        for attempt in range(10_000):
            length = syllables + attempt // 20
            word = "".join(self.rng.choice(SYLLABLES) for _ in range(length)).capitalize()
            if word not in self.used:
                self.used.add(word)
                return word
        raise RuntimeError("ran out of fictional names")  # pragma: no cover


def _sentence(rng: random.Random, relation: str, **slots: Any) -> str:
    return rng.choice(FACTS[relation]).format(**slots)


def _doc(rng: random.Random, title: str, facts: list[str], fillers: int) -> str:
    sentences = facts + [rng.choice(FILLER).format(noun=rng.choice(NOUNS), noun2=rng.choice(NOUNS)) for _ in range(fillers)]
    rng.shuffle(sentences)
    return f"{title}\n\n" + " ".join(sentences)


def make_chain(rng: random.Random, names: _Names, fillers: int, town: str | None = None, dish: str | None = None) -> Chain:
    dish = dish or f"{names.word().lower()} {rng.choice(DISHES)}"
    chain = Chain(dish=dish, festival=f"{names.word()} {rng.choice(FESTIVALS)}", town=town or names.word(3),
                  competition=f"{names.word()} {rng.choice(CONTESTS)}",
                  winners={year: f"{names.word()} {names.word(3)}" for year in rng.sample(range(1990, 2024), rng.randint(3, 5))})
    chain.docs["festival"] = _doc(rng, chain.festival, [_sentence(rng, "named_after", festival=chain.festival, dish=dish)], fillers)
    chain.docs["town"] = _doc(rng, chain.town, [_sentence(rng, "hosts", town=chain.town, festival=chain.festival,
                                                          month=rng.choice(MONTHS))], fillers)
    chain.docs["competition"] = _doc(rng, chain.competition, [_sentence(rng, "home_of", town=chain.town,
                                                                        competition=chain.competition)], fillers)
    for year, person in chain.winners.items():
        chain.docs[f"person {year}"] = _doc(rng, person, [_sentence(rng, "won", person=person, year=year,
                                                                    competition=chain.competition)], fillers)
    return chain


class MultiHopFamily(TaskFamily):
    """2-4 hop questions over a fictional document collection (context is list[str])."""

    name = "multihop"
    signature = "context: list[str], query -> answer"
    description = "multi-hop questions over a fictional document collection, with hard negatives"

    def make_task(self, size: int, seed: int) -> Task:
        check_size(size)
        rng = random.Random(seed)
        names = _Names(rng)
        fillers = 0 if size < 2**13 else 2 if size < 2**16 else 4
        target = make_chain(rng, names, fillers)
        chains = [target]
        if size >= 2**12:  # hard negatives: a near-duplicate town, and a festival named after a similar dish
            chains.append(make_chain(rng, names, fillers, town=f"{target.town} {rng.choice(['Heights', 'Crossing'])}"))
            chains.append(make_chain(rng, names, fillers, dish=f"{target.dish.split()[0]} {rng.choice(DISHES)}-cake"))
        total = sum(len(doc) for chain in chains for doc in chain.docs.values())
        while total < size:
            chains.append(make_chain(rng, names, fillers))
            total += sum(len(doc) for doc in chains[-1].docs.values())
        docs = [(chain is target, role, text) for chain in chains for role, text in chain.docs.items()]
        rng.shuffle(docs)
        hops = rng.choice((2, 3, 4)) if size >= 2**11 else 2
        year = rng.choice(sorted(target.winners))
        roles = ["festival", "town", "competition", f"person {year}"][4 - hops:]
        evidence = [i for i, (mine, role, _) in enumerate(docs) if mine and role in roles]
        question = QUESTIONS[hops].format(dish=target.dish, festival=target.festival, town=target.town, year=year)
        return Task([text for _, _, text in docs], question, target.winners[year],
                    {"hops": hops, "year": year, "evidence": evidence,
                     "chain": [target.dish, target.festival, target.town, target.competition][4 - hops:]})

    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        def norm(text: str) -> str:
            return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split())

        if norm(str(answer)) == norm(gold.answer):
            return 1.0, f"Correct: {gold.answer}."
        return 0.0, f"Expected {gold.answer!r} (a {gold.hops}-hop chain), got {str(answer)[:80]!r}."

    def world(self) -> "MultiHopWorld":
        return MultiHopWorld()

    def advice(self) -> str:
        return ("Follow the chain one hop at a time: filter the documents with a regex on the current entity's "
                "exact name, ask the sub-model about the matching documents, and check near-duplicate names.")


class MultiHopWorld:
    """The simulated model's knowledge: the question templates, and how facts are phrased."""

    name = "multihop"

    def plan(self, question: str) -> TaskPlan | None:
        for hops, pattern in _QUESTION.items():
            found = pattern.search(question)
            if found:
                start, year = found.groups()
                kinds = ["festival", "town", "competition", "person"][4 - hops:]
                stages = tuple(Stage(ASKS[kind].replace("{year}", year), "{entity}") for kind in kinds)
                return TaskPlan(
                    stages=stages, start=start, outputs=("evidence",),
                    combine=("answer = pick(replies)\n"
                             "evidence = sorted({i for name, ids in trail for i in ids if name in units[i]})"),
                    guess="units[0].split('\\n')[0]",
                )
        return None

    def answer(self, prompt: str, mistake: bool = False) -> str:
        question, text = split_prompt(prompt)
        for kind, pattern in _ASK.items():
            found = pattern.match(question)
            if found:
                return _lookup(kind, found.groups(), read_facts(text), mistake)
        return NONE

    def respond(self, inputs: dict[str, str], outputs: list[str]) -> dict[str, Any] | None:
        """Outer steps of `dspy_rlm.programs.research.ResearchQA` (rewrite the question, cite the answer)."""
        if outputs == ["search_question"]:
            return {"search_question": inputs.get("question", "")}  # a weak rewriter: it keeps the question
        if outputs == ["cited_answer"]:  # every passage given is evidence the RLM gathered for the chain
            tags = _PASSAGE_TAG.findall(inputs.get("passages", ""))
            return {"cited_answer": " ".join([inputs.get("answer", "").strip(), *(f"[doc {tag}]" for tag in tags)])}
        return None


def _lookup(kind: str, asked: tuple[str, ...], facts: list[tuple[str, dict[str, str]]], mistake: bool) -> str:
    entity = asked[0]
    relation, key = {"festival": ("named_after", "dish"), "town": ("hosts", "festival"),
                     "competition": ("home_of", "town"), "person": ("won", "competition")}[kind]
    candidates = [slots[kind] for rel, slots in facts if rel == relation]
    hits = [slots[kind] for rel, slots in facts
            if rel == relation and slots[key] == entity and (kind != "person" or slots["year"] == asked[1])]
    if mistake:
        others = [c for c in candidates if c not in hits]
        return others[0] if others else NONE
    return hits[0] if hits else NONE
