"""Query generators for `benchmarks.fuzz`: grammar-driven (from the semantic model) and mutation."""

from benchmarks.fuzzing.grammar import GrammarGenerator
from benchmarks.fuzzing.mutation import MutationGenerator, load_corpus, noise_query

__all__ = ["GrammarGenerator", "MutationGenerator", "load_corpus", "noise_query"]
