"""The summary ``make sim`` prints when it stops: counts from the cloud's message log and the
firmware's stats line.

Every message of the device in the cloud's log falls in exactly one category of ``UP`` or
``DOWN`` (the last one, ``other``, takes what no other does), so the categories add up to
the totals. The device's own ``published`` count is set beside the cloud's, with the reason
when they differ; the times to online say which clock and which event each one measures.
"""

import re

# (key, words, topic pattern) in order; the first match wins. pk/dn are the device's.
UP = (
    ("properties", "property posts", r"/sys/{pk}/{dn}/thing/event/property/post$"),
    ("events", "event posts", r"/sys/{pk}/{dn}/thing/event/[^/]+/post$"),
    ("set_replies", "property set replies", r"/sys/{pk}/{dn}/thing/service/property/set_reply$"),
    ("service_replies", "service replies", r"/sys/{pk}/{dn}/thing/service/[^/]+_reply$"),
    ("echoes", "echoes (user/update)", r"/{pk}/{dn}/user/update$"),
    ("user", "other user topics", r"/{pk}/{dn}/user/"),
    ("ntp", "NTP requests", r"/ext/ntp/{pk}/{dn}/request$"),
    ("other", "other topics", r""),
)
DOWN = (
    ("post_replies", "property post replies", r"/sys/{pk}/{dn}/thing/event/property/post_reply$"),
    ("event_replies", "event post replies", r"/sys/{pk}/{dn}/thing/event/[^/]+/post_reply$"),
    ("property_set", "property sets", r"/sys/{pk}/{dn}/thing/service/property/set$"),
    ("services", "service calls", r"/sys/{pk}/{dn}/thing/service/[^/]+$"),
    ("user_get", "user/get", r"/{pk}/{dn}/user/get$"),
    ("user", "other user topics", r"/{pk}/{dn}/user/"),
    ("ntp", "NTP responses", r"/ext/ntp/{pk}/{dn}/response$"),
    ("other", "other topics", r""),
)


def categorize(rows, table, pk, dn):
    """``{key: count}`` for every category of ``table`` (zeros included)."""
    compiled = []
    for key, _, pattern in table:
        text = pattern.replace("{pk}", re.escape(pk)).replace("{dn}", re.escape(dn))
        compiled.append((key, re.compile("^" + text) if text else None))
    counts = {key: 0 for key, _, _ in table}
    for row in rows:
        topic = row.get("topic") or ""
        for key, regex in compiled:
            if regex is None or regex.search(topic):
                counts[key] += 1
                break
    return counts


def summarize(rows, pk, dn, started_ms=None, stats=None, device_online_ms=None):
    """Counts for the summary from the cloud's log rows of one device and the firmware stats.

    ``started_ms``: when the VM process started (host clock, epoch ms); ``device_online_ms``:
    when its ``state online`` line reached the host (same clock), if it did."""
    mine = [r for r in rows if r.get("productKey") == pk and r.get("deviceName") == dn]
    online = [r for r in mine if r["type"] == "status" and r["status"] == "online"]
    up = [r for r in mine if r["type"] == "up"]
    down = [r for r in mine if r["type"] == "down"]
    delivered = [r for r in down if r["status"] == "200"]
    replies = [r for r in up if (r.get("topic") or "").endswith("/property/set_reply")]
    summary = {
        "online": bool(online),
        "time_to_online_s": None,
        "host_time_to_device_online_s": None,
        "device_time_to_online_s": None,
        "up": len(up),
        "up_by": categorize(up, UP, pk, dn),
        "set_replies": [r["status"] for r in replies],
        "down": len(delivered),
        "down_by": categorize(delivered, DOWN, pk, dn),
        "down_undelivered": len(down) - len(delivered),
        "reconnects": max(0, len(online) - 1),
        "published": None,
        "dropped": None,
    }
    summary["up_properties"] = summary["up_by"]["properties"]
    summary["up_echoes"] = summary["up_by"]["echoes"]
    summary["down_user_get"] = summary["down_by"]["user_get"]
    summary["down_property_set"] = summary["down_by"]["property_set"]
    if started_ms is not None:
        if online:
            summary["time_to_online_s"] = round((online[0]["time"] - started_ms) / 1000, 2)
        if device_online_ms is not None:
            seconds = (device_online_ms - started_ms) / 1000
            summary["host_time_to_device_online_s"] = round(seconds, 2)
    if stats:
        if stats.get("time_to_online_ms"):
            summary["device_time_to_online_s"] = round(stats["time_to_online_ms"] / 1000, 2)
        summary["published"] = stats.get("published")
        summary["dropped"] = stats.get("dropped", 0) + stats.get("echo_dropped", 0)
        summary["reconnects"] = max(summary["reconnects"], stats.get("reconnects", 0))
    # Both ways: the cloud got the device's messages, and the device answered a downlink (an
    # echo of /user/get or a property set_reply) after the cloud delivered it.
    answered = summary["up_echoes"] + len(replies)
    summary["ok"] = bool(online) and summary["up"] > 0 and summary["down"] > 0 and answered > 0
    return summary


def breakdown(counts, table):
    """``"property posts 9, echoes 5"``: the categories that occurred, in the table's order."""
    parts = ["%s %d" % (words, counts[key]) for key, words, _ in table if counts[key]]
    return ", ".join(parts) or "none"


def online_lines(summary):
    if not summary["online"]:
        return ["  online:         NO"]
    lines = ["  online:         yes"]
    if summary["time_to_online_s"] is not None:
        lines.append(
            "    the cloud's log: connected %.2f s after the VM process started (host clock)"
            % summary["time_to_online_s"]
        )
    host, own = summary["host_time_to_device_online_s"], summary["device_time_to_online_s"]
    if host is not None:
        text = "    the device: online (subscribed) %.2f s after the VM process started" % host
        if own is not None:
            text += "; by its own clock %.2f s from its session's start (%.2f s before it: " % (
                own,
                host - own,
            )
            text += "the VM's start-up and the imports)"
        lines.append(text)
    elif own is not None:
        lines.append("    the device's own clock: %.2f s from its session's start" % own)
    return lines


def published_line(summary):
    published, logged = summary["published"], summary["up"]
    if published is None:
        return "  device published: unknown (no stats line)"
    text = "  device published: %d (its stats line)" % published
    if published == logged:
        return text + ", as the cloud logged"
    if published < logged:
        return (
            text
            + "; the cloud logged %d more: sent when the firmware stopped, before the "
            % (logged - published)
            + "module's OK or PUBACK reached it"
        )
    return (
        text
        + "; %d not in the cloud's log: accepted by the module but not (yet) logged "
        % (published - logged)
        + "by the cloud when it stopped"
    )


def render_summary(summary, seconds):
    codes = ", ".join(summary["set_replies"]) or "none"
    lines = ["summary after %.0f s" % seconds] + online_lines(summary)
    lines += [
        "  messages up:    %d logged by the cloud (%s; set reply codes: %s)"
        % (summary["up"], breakdown(summary["up_by"], UP), codes),
        published_line(summary),
        "  messages down:  %d delivered (%s), %d undelivered"
        % (summary["down"], breakdown(summary["down_by"], DOWN), summary["down_undelivered"]),
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
