"""``make sim`` and the plumbing it shares with the end-to-end tests and the benchmark.

The firmware, the emulated Air724UG and the local cloud, each a child process, in one log:

- ``proc``: ``Proc`` (a child whose output lines are collected and waited on), ``SimError``,
  ``run_json``, the paths of the project and of the venv's programs;
- ``parts``: ``Cloud`` (``aliyun-local``), ``Emulator`` (``air724-sim``), ``device_config``,
  ``resolve_rules``, the demo's constants (region, default IMEI, the firmware's heap);
- ``board``: ``layout_board`` and ``Firmware`` (firmware/main.py on the MicroPython VM);
- ``rows``: ``RowLog`` (the cloud's message log as it arrives) and ``row_matches``;
- ``console``: the one time-stamped log and the short form of a cloud row;
- ``summary``: the counts printed when the sim stops;
- ``run``: ``Sim``, the orchestrator; ``cli``: its options (``python -m tools.sim``).
"""
