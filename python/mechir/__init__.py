"""Reading mechir's outputs in Python: circuit maps (circuit.cmap, circuit.json) as numpy arrays
with named axes, per-pair results (pairs.jsonl[.zst]) as a pandas DataFrame or dicts, and cached
activations by pair id and hook name. See docs/PYTHON.md."""
from .cache import Cache, CacheEntry, open_cache
from .circuit import (COMPONENTS, ROLES, CircuitMap, Estimates, Stratum, read_circuit_json,
                      read_cmap)
from .errors import MechirFormatError
from .pairs import NamedArray, pair_arrays, read_pairs

__version__ = "0.1.0"

__all__ = ["Cache", "CacheEntry", "CircuitMap", "COMPONENTS", "Estimates", "MechirFormatError",
           "NamedArray", "ROLES", "Stratum", "open_cache", "pair_arrays", "read_circuit_json",
           "read_cmap", "read_pairs"]
