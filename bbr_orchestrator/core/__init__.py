"""Pure domain code: standard library only, no I/O, no clock."""
