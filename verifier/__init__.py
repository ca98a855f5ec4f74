"""`hall-verify`: an inspector's check of an exported audit bundle, with the wire module and PyNaCl
only (no database, no hub config, nothing of the hub imported)."""
