"""The shared core: what both halves read and write, depending on neither.

errors (the error tree), schema (strict dataclass <-> data), catalog (targets and profiles),
specs (input and output signatures), bundle (the manifest and the atomic bundle folder),
sysfs (reading small files below a root). numpy and the standard library only.
"""
