"""Air724UG emulator: the module's AT dialect on a pty or TCP, backed by real networking."""
