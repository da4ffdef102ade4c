"""Generated tasks are cached on disk: the same task comes back, and a changed or damaged file never serves."""

from __future__ import annotations

import pytest

from dspy_rlm.programs.families import FAMILIES, get_family
from dspy_rlm.programs.families import cache


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_cached_task_is_the_task_the_family_makes(tmp_path, name):
    family = get_family(name)
    made = family.make_task(4096, 3)
    first = cache.cached_task(family, 4096, 3, folder=tmp_path)
    again = cache.cached_task(family, 4096, 3, folder=tmp_path)
    assert first == made and again == made
    assert len(list(tmp_path.glob(f"{name}-4096-3-*.json"))) == 1
    assert family.score(again.example(), made.answer)[0] == 1.0


def test_a_second_run_reads_the_file_instead_of_generating(tmp_path, monkeypatch):
    family = get_family("niah")
    cache.cached_task(family, 4096, 0, folder=tmp_path)
    monkeypatch.setattr(type(family), "make_task", lambda *a: pytest.fail("regenerated a cached task"))
    assert cache.cached_task(family, 4096, 0, folder=tmp_path).answer


def test_a_damaged_file_is_regenerated_and_replaced(tmp_path):
    family = get_family("niah")
    made = cache.cached_task(family, 4096, 0, folder=tmp_path)
    (path,) = tmp_path.glob("niah-4096-0-*.json")
    path.write_text('{"context": "trunc')
    assert cache.cached_task(family, 4096, 0, folder=tmp_path) == made
    assert cache.cached_task(family, 4096, 0, folder=tmp_path) == made


def test_the_key_follows_the_generator_source(tmp_path, monkeypatch):
    family = get_family("niah")
    cache.cached_task(family, 4096, 0, folder=tmp_path)
    monkeypatch.setattr(cache, "_generator_digest", lambda family: "changed")
    cache.cached_task(family, 4096, 0, folder=tmp_path)
    assert len(list(tmp_path.glob("niah-4096-0-*.json"))) == 2
