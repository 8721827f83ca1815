"""Air724UG emulator: the module\x27s AT dialect on a pty or TCP, backed by real networking."""
