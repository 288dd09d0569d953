"""Run names in the style the MLflow UI shows: ``<adjective>-<animal>-<number>``, at most 20 characters."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "able", "agile", "amber", "bold", "brave", "bright", "calm", "casual", "clever", "crisp",
    "curious", "dapper", "eager", "early", "fancy", "fleet", "gentle", "glad", "golden", "grand",
    "happy", "honest", "humble", "jolly", "keen", "kind", "lively", "lucky", "merry", "mighty",
    "modest", "neat", "nimble", "noble", "patient", "placid", "polite", "proud", "quick", "quiet",
    "rare", "rustic", "shy", "silent", "sleek", "smart", "steady", "sunny", "swift", "tidy",
    "tranquil", "upbeat", "vivid", "warm", "wise", "witty", "zany", "zealous",
)

_ANIMALS = (
    "ant", "badger", "bat", "bear", "bee", "bison", "boar", "carp", "cat", "cod", "colt", "crab",
    "crane", "crow", "deer", "dove", "duck", "eel", "elk", "finch", "fox", "frog", "gnu", "goat",
    "hare", "hawk", "heron", "ibis", "jay", "koala", "lark", "lion", "lynx", "mole", "moth",
    "newt", "otter", "owl", "panda", "quail", "ram", "robin", "seal", "shrew", "snail", "stork",
    "swan", "toad", "trout", "vole", "wasp", "whale", "wolf", "wren", "yak", "zebra",
)

MAX_LENGTH = 20


def random_run_name(rng: random.Random | None = None) -> str:
    """A fresh name such as ``swift-otter-417``, never longer than 20 characters."""
    rng = rng or random
    name = ""
    for _ in range(10):
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_ANIMALS)}-{rng.randrange(1000)}"
        if len(name) <= MAX_LENGTH:
            return name
    return name[:MAX_LENGTH]
