"""Support for TruthNet's own tests and benchmarks: the realistic-footage corpus
(:mod:`.corpus`, needs the optional ``av``).  Nothing in the runtime imports this package."""
