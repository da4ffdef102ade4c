"""Labelled lines for the OOLONG-style families: `Date || User || Instance` records.

Each instance is a general-knowledge question of one of six hidden labels
(TREC coarse). Instances come from paraphrased template banks with slot
fillers, so no single keyword finds a label: `CUES` are the keyword regexes a
model would try from its priors, and they are deliberately imperfect. The
banks are disjoint by label, and `classify` (the simulated sub-model's
"understanding") recovers the label of any instance exactly.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from dspy_rlm.lms.simulated.world import NONE, TaskPlan, split_prompt
from dspy_rlm.programs.families.base import derive_seed

LABELS = ("numeric value", "entity", "location", "description and abstract concept", "abbreviation", "human being")

TEMPLATES = {
    "numeric value": (
        "How many {unit} are there in a {container}?", "In what year did the {event} take place?",
        "What is the population of {city}?", "How far is {city} from {city2}?", "When was the {org} founded?",
        "How long does a {animal} usually live?", "At what temperature does {substance} boil?",
        "What was the final score of the {event}?",
    ),
    "entity": (
        "What instrument did {person} play?", "Which animal is the mascot of the {org}?",
        "What color is the flag of {country}?", "Which language is spoken in {city}?",
        "What currency is used in the country of {country}?", "Name a dish that is typical of {country}.",
        "What was the name of {person}'s first ship?", "Which sport is played at the {venue}?",
    ),
    "location": (
        "Where is the {landmark} located?", "In which country would you find the {landmark}?",
        "Name the river that flows through {city}.", "What city hosts the {event}?",
        "Which continent is {country} part of?", "Where did {person} grow up?", "What is the capital of {country}?",
        "On which island does the {venue} stand?",
    ),
    "description and abstract concept": (
        "What does the term {term} mean?", "Why do {animal}s migrate in {season}?", "How does a {machine} work?",
        "What is the definition of {term}?", "Describe the rules of {sport}.", "What causes {phenomenon}?",
        "What is the purpose of the {org}?", "Explain the origin of the custom of {custom}.",
    ),
    "abbreviation": (
        "What does {acronym} stand for?", "What is the abbreviation for the {org}?",
        "Expand the acronym {acronym}.", "What is the full form of {acronym}?",
        "How is the {org} usually abbreviated?", "What is the short form of {term}?",
    ),
    "human being": (
        "Who wrote {book}?", "Which painter created {artwork}?",
        "Name the scientist credited with discovering {discovery}.", "Who was the first {role} of {country}?",
        "Who founded the {org}?", "Which actor played {character} on stage?",
        "What is the name of the architect who designed the {landmark}?", "Who invented the {machine}?",
    ),
}

FILLERS = {
    "unit": ("inches", "ounces", "minutes", "seats", "pages", "teaspoons", "players"),
    "container": ("mile", "pound", "day", "stadium", "novel", "cup", "team"),
    "event": ("Harbor Regatta", "Winter Fair", "Glass Treaty", "Lantern March", "Copper Cup final", "Spring Summit"),
    "city": ("Velmora", "Ostrand", "Kelbridge", "Marrowick", "Tessaly", "Dunmere", "Halvik", "Brinmoor"),
    "city2": ("Quellstone", "Arlen Bay", "Pike Hollow", "Sorrel Point", "Fennick"),
    "org": ("Guild of Cartographers", "Northern Rail Society", "Orchard League", "Tidewater Bank",
            "Lantern Institute", "Society of Bellfounders"),
    "animal": ("heron", "badger", "tortoise", "lynx", "sea otter", "marten"),
    "substance": ("brine", "olive oil", "mercury", "seawater", "glycerin"),
    "person": ("Ada Venn", "Tomas Quill", "Mira Holt", "Jonah Reeve", "Elsa Marrow", "Pavel Dray", "Ines Calder"),
    "country": ("Arvania", "Belmark", "Corsia", "Duvonia", "Estria", "Fennland", "Galdor"),
    "venue": ("Old Quay Arena", "Saltmarsh Grounds", "Crown Pavilion", "Heron Park"),
    "landmark": ("Needle Tower", "Glass Bridge", "Sunken Abbey", "Amber Gate", "Stormwatch Lighthouse"),
    "term": ("entropy", "arbitrage", "photosynthesis", "sonnet", "baroque", "inflation", "metaphor"),
    "season": ("autumn", "spring", "winter", "late summer"),
    "machine": ("steam engine", "loom", "barometer", "printing press", "telegraph", "sextant"),
    "sport": ("croquet", "curling", "water polo", "fencing", "lacrosse"),
    "phenomenon": ("tides", "rainbows", "earthquakes", "auroras", "fog", "echoes"),
    "custom": ("harvest bonfires", "lantern floating", "midwinter gifts", "bell ringing"),
    "acronym": ("NATO", "UNESCO", "RADAR", "LASER", "SCUBA", "NASA", "OPEC", "FIFA"),
    "book": ("The Salt Road", "A Winter Ledger", "Harbor Lights", "The Glass Orchard", "Seven Bells"),
    "artwork": ("The Drowned Garden", "Girl with a Lantern", "Storm over Velmora", "The Copper Field"),
    "discovery": ("the blue comet", "cold fusion salts", "the Marrow isotope", "the deep current"),
    "role": ("president", "prime minister", "chancellor", "astronaut", "governor"),
    "character": ("the Night Clerk", "Captain Arden", "the Glass King", "Madame Fell"),
}

# Keyword regexes a model might write from its priors: they catch some of a label's templates and some of others'.
CUES = {
    "numeric value": r"\bhow\b|\bwhat year\b|\bpopulation\b",
    "entity": r"\bwhich\b|\bwhat (?:color|instrument|currency)\b",
    "location": r"\bwhere\b|\bcountry\b|\bcity\b|\briver\b|\bcapital\b",
    "description and abstract concept": r"\bwhy\b|\bdefinition\b|\bdescribe\b|\bexplain\b|\bwhat does\b",
    "abbreviation": r"\bstand for\b|\babbreviat|\bacronym\b|\bterm\b",
    "human being": r"\bwho\b|\bname the\b",
}

START = dt.date(2022, 1, 1)
DAYS = (dt.date(2024, 12, 31) - START).days


@dataclass(frozen=True)
class Record:
    """One labelled line."""

    date: dt.date
    user: str
    label: str
    text: str

    @property
    def line(self) -> str:
        return f"Date: {format_date(self.date)} || User: {self.user} || Instance: {self.text}"


def format_date(day: dt.date) -> str:
    return day.strftime("%b %d, %Y")


def make_instance(label: str, rng: random.Random) -> str:
    template = rng.choice(TEMPLATES[label])
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(FILLERS[m.group(1)]), template)


@lru_cache(maxsize=1)
def _matcher() -> tuple[re.Pattern, list[str]]:
    """One regex with an alternative per template; the matching group names the template."""
    alternatives, labels = [], []
    for label, templates in TEMPLATES.items():
        for template in templates:
            parts = re.split(r"\{\w+\}", template)
            alternatives.append(f"(?P<t{len(labels)}>" + "(?:.+?)".join(re.escape(p) for p in parts) + ")")
            labels.append(label)
    return re.compile("|".join(alternatives)), labels


def classify(text: str) -> str | None:
    """The label of an instance text, or None when it fits no template."""
    pattern, labels = _matcher()
    found = pattern.fullmatch(text.strip())
    return labels[int(found.lastgroup[1:])] if found else None


def template_labels(text: str) -> set[str]:
    """Every label whose templates match `text` (exactly one for a well-formed bank)."""
    matched = set()
    for label, templates in TEMPLATES.items():
        for template in templates:
            parts = re.split(r"\{\w+\}", template)
            if re.fullmatch("(?:.+?)".join(re.escape(p) for p in parts), text):
                matched.add(label)
    return matched


def make_users(n: int, rng: random.Random) -> list[str]:
    return [str(u) for u in rng.sample(range(10_000, 100_000), n)]


def generate_records(size: int, rng: random.Random, users: list[str]) -> list[Record]:
    """Records until their lines fill about `size` characters; users are Zipf-skewed, labels skewed per task."""
    user_weights = [1 / (rank + 1) ** 1.1 for rank in range(len(users))]
    label_weights = [rng.uniform(0.3, 1.0) for _ in LABELS]
    records, total = [], 0
    while total < size:
        label = rng.choices(LABELS, label_weights)[0]
        record = Record(START + dt.timedelta(days=rng.randrange(DAYS + 1)), rng.choices(users, user_weights)[0],
                        label, make_instance(label, rng))
        records.append(record)
        total += len(record.line) + 1
    return records


# The simulated model's sub-query about labelled lines, and the code pieces that read them.
ASK_LABELS = ("Classify each line below by the kind of question in its Instance: one of "
              + ", ".join(f"'{label}'" for label in LABELS)
              + ". Reply with one label per line, in order, and nothing else.")
PARSE_SETUP = """import datetime as dt
LABELS = {labels!r}

def user_of(u):
    return u.split(' || ')[1].split(': ', 1)[1]

def date_of(u):
    return dt.datetime.strptime(u.split(' || ')[0].split(': ', 1)[1], '%b %d, %Y').date()

def labelled_rows():
    rows = []
    for ids, reply in zip(chunk_ids, replies):
        if reply.startswith('[ERROR]'):
            continue
        for i, label in zip(ids, reply.splitlines()):
            rows.append((user_of(units[i]), date_of(units[i]), label.strip().strip("'").lower()))
    return rows""".format(labels=LABELS)


def answer_labels(prompt_text: str, mistake: bool, pick: random.Random) -> str:
    """The sub-model's labels for each line of `prompt_text` (one wrong if `mistake`)."""
    labels = []
    for line in prompt_text.splitlines():
        if line.strip():
            labels.append(classify(line.split("Instance: ", 1)[-1]) or "unknown")
    if mistake and labels:
        index = pick.randrange(len(labels))
        labels[index] = pick.choice([label for label in LABELS if label != labels[index]])
    return "\n".join(labels)


class LabelledLinesWorld:
    """The simulated model's knowledge of a labelled-lines family: it reads a question into a
    plan with the family's `parsers`, and as a sub-model labels lines (see `answer_labels`)."""

    name: str
    preamble = ""  # boilerplate before the question itself
    parsers: dict[str, re.Pattern[str]]
    make_plan: Callable[[str, tuple[str, ...]], TaskPlan]

    def plan(self, question: str) -> TaskPlan | None:
        question = question.removeprefix(self.preamble).strip()
        for kind, pattern in self.parsers.items():
            found = pattern.search(question)
            if found:
                return self.make_plan(kind, found.groups())
        return None

    def answer(self, prompt: str, mistake: bool = False) -> str:
        question, text = split_prompt(prompt)
        if question != ASK_LABELS:
            return NONE
        return answer_labels(text, mistake, random.Random(derive_seed(f"{self.name}-mistake", prompt)))
