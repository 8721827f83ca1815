"""The resident part of over-the-air updates: two topics, a state callback, nothing more.

``install(session, board, log, config, state, version)`` subscribes ``/ota/device/upgrade``
and ``…/thing/ota/firmware/get_reply`` and watches the session's state. The agent
(``aliyun.otaagent``) is imported when there is something to do (the session came online, a
push arrived, a trial runs) and dropped again once it is idle, so a device that is not updating
keeps only these few closures in RAM.
"""


def install(session, board, log, config: dict, state, version: str) -> None:
    """Register with ``session``; ``state`` is what ``otaboot.select()`` found at boot,
    ``version`` the factory set's application version."""
    trial_ms = config["ota_trial_s"] * 1000
    held = []  # the agent while it works
    subscribed = []

    def event(what: str, payload=None) -> None:
        if not held:
            from aliyun.otaagent import OtaAgent

            held.append(OtaAgent(session, board, log, state, version, trial_ms, idle))
        held[0].event(what, payload)

    def idle() -> None:
        held.clear()
        from aliyun import unload

        unload(("aliyun.otaagent",))

    def on_push(topic: str, payload) -> None:
        event("push", bytes(payload))

    def on_state(now: str) -> None:
        topics = session.topics
        if not subscribed and topics is not None:
            subscribed.append(True)
            session.subscribe("/ota/device/upgrade/" + topics.user_prefix[1:-6], on_push)
            session.subscribe(topics.thing_prefix + "ota/firmware/get_reply", on_push)
        if now == "online" or held:
            event(now)

    session.on_state(on_state)
    on_state("")
    if state is not None and state.get("status") == "trial":
        event("trial")
    from aliyun import unload

    unload(("aliyun.otahook",))  # the closures stay, registered with the session
