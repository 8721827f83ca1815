"""The summary ``make sim`` prints when it stops: counts from the cloud's message log and the
firmware's stats line."""


def summarize(rows, pk, dn, started_ms=None, stats=None):
    """Counts for the summary from the cloud's log rows of one device and the firmware stats."""
    mine = [r for r in rows if r.get("productKey") == pk and r.get("deviceName") == dn]
    online = [r for r in mine if r["type"] == "status" and r["status"] == "online"]
    up = [r for r in mine if r["type"] == "up"]
    down = [r for r in mine if r["type"] == "down"]
    delivered = [r for r in down if r["status"] == "200"]

    def count(items, suffix):
        return sum(1 for r in items if (r.get("topic") or "").endswith(suffix))

    replies = [r for r in up if (r.get("topic") or "").endswith("/property/set_reply")]
    set_replies = [r["status"] for r in replies]
    summary = {
        "online": bool(online),
        "time_to_online_s": None,
        "device_time_to_online_s": None,
        "up": len(up),
        "up_properties": count(up, "/event/property/post"),
        "up_echoes": count(up, "/user/update"),
        "set_replies": set_replies,
        "down": len(delivered),
        "down_undelivered": len(down) - len(delivered),
        "down_user_get": count(delivered, "/user/get"),
        "down_property_set": count(delivered, "/property/set"),
        "reconnects": max(0, len(online) - 1),
        "dropped": None,
    }
    if online and started_ms is not None:
        summary["time_to_online_s"] = round((online[0]["time"] - started_ms) / 1000, 2)
    if stats:
        if stats.get("time_to_online_ms"):
            summary["device_time_to_online_s"] = round(stats["time_to_online_ms"] / 1000, 2)
        summary["dropped"] = stats.get("dropped", 0) + stats.get("echo_dropped", 0)
        summary["reconnects"] = max(summary["reconnects"], stats.get("reconnects", 0))
    # Both ways: the cloud got the device's messages, and the device answered a downlink (an
    # echo of /user/get or a property set_reply) after the cloud delivered it.
    answered = summary["up_echoes"] + len(set_replies)
    summary["ok"] = bool(online) and summary["up"] > 0 and summary["down"] > 0 and answered > 0
    return summary


def render_summary(summary, seconds):
    yes = "yes" if summary["online"] else "NO"
    online = yes
    if summary["time_to_online_s"] is not None:
        online += ", %.2f s after the firmware started" % summary["time_to_online_s"]
    if summary["device_time_to_online_s"] is not None:
        online += " (device's own count: %.2f s)" % summary["device_time_to_online_s"]
    codes = ", ".join(summary["set_replies"]) or "none"
    lines = [
        "summary after %.0f s" % seconds,
        "  online:         " + online,
        "  messages up:    %d (properties %d, echoes %d, property set replies %d: %s)"
        % (
            summary["up"],
            summary["up_properties"],
            summary["up_echoes"],
            len(summary["set_replies"]),
            codes,
        ),
        "  messages down:  %d delivered (user/get %d, property set %d), %d undelivered"
        % (
            summary["down"],
            summary["down_user_get"],
            summary["down_property_set"],
            summary["down_undelivered"],
        ),
        "  reconnects:     %d" % summary["reconnects"],
        "  dropped:        %s"
        % ("unknown (no stats line)" if summary["dropped"] is None else summary["dropped"]),
        "  result:         "
        + (
            "PASS: online, messages both ways"
            if summary["ok"]
            else "FAIL: the device did not come online and exchange messages both ways"
        ),
    ]
    return lines
