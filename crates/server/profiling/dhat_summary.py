#!/usr/bin/env python3
"""Summarises a dhat heap profile of the server holding N idle members.

Reads `dhat-heap.json` (written by `roomgate --features dhat-heap` on SIGUSR1 or at exit) and
prints what was live when it was written (`--peak`: at the heap's peak instead), per member,
grouped by the rule below that first matches a frame of the allocation's backtrace.

    python3 crates/server/profiling/dhat_summary.py target/dhat-idle.json 2000 [--peak]
"""

import json
import re
import sys
from collections import defaultdict

# (label, pattern): an allocation is named by the innermost frame of its backtrace that one of
# these patterns matches (the first pattern, in this order, for that frame).
RULES = [
    ("actix-http: connection read buffer (8 KiB)", r"h1/dispatcher\.rs:279:"),
    ("actix-http: connection write buffer (8 KiB)", r"h1/dispatcher\.rs:280:"),
    ("actix-http: connection task (dispatcher future)", r"Cell<actix_server::service"),
    ("session task (the `session::run` future)", r"Cell<tokio_util::task::task_tracker::TrackedFuture<roomgate_server::session::run"),
    ("actix-ws: Session → body channel (mpsc of 32)", r"actix-ws-[0-9.]+/src/lib\.rs:76:"),
    ("actix-ws: Session → body channel (mpsc of 32)", r"<actix_http::ws::codec::Message.*\(sync/mpsc/"),
    ("actix-ws: Session → body channel (mpsc of 32)", r"mpsc::chan::Chan<actix_http::ws::codec::Message"),
    ("actix-ws: frame buffers and queues", r"actix-ws-[0-9.]+/src/"),
    ("hub: subscription queue (mpsc of ws.outbound_queue_frames)", r"<alloc::sync::Arc<str.*\(sync/mpsc/"),
    ("hub: subscription queue (mpsc of ws.outbound_queue_frames)", r"mpsc::chan::Chan<alloc::sync::Arc<str"),
    ("hub: subscription queue (mpsc of ws.outbound_queue_frames)", r"server/src/hub\.rs"),
    ("session: outbound batch, heartbeat, tokens", r"src/session/mod\.rs|cancellation_token"),
    ("tokio: socket registration", r"scheduled_io"),
    ("actix-http: request, payload, body", r"actix-http-[0-9.]+/|\(src/h1/|\(src/body/"),
    ("actix-web: request and response", r"actix-web-[0-9.]+/|serde_urlencoded"),
    ("membership, seats, join", r"server/src/(join|live_seats|session)|roomgate_admission|admission/src"),
    ("persistence (pool, SQLite)", r"roomgate_persistence|persistence/src|diesel|libsqlite3|sqlite3"),
    ("tracing", r"tracing"),
]


def label_of(stack):
    for frame in stack:
        for name, pattern in RULES:
            if re.search(pattern, frame):
                return name
    return "other (start-up, caches)"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--peak"]
    # "eb": live when the profile was written; "gb": live at the heap's peak (t-gmax).
    field = "gb" if "--peak" in sys.argv else "eb"
    path = args[0] if args else "dhat-heap.json"
    members = int(args[1]) if len(args) > 1 else 1
    with open(path, encoding="utf-8") as file:
        profile = json.load(file)
    frames = profile["ftbl"]
    groups = defaultdict(lambda: [0, 0])
    sites = []
    total = 0
    for pp in profile["pps"]:
        gb = pp.get(field, 0)
        if not gb:
            continue
        total += gb
        stack = [frames[i] for i in pp["fs"]]
        label = label_of(stack)
        groups[label][0] += gb
        groups[label][1] += pp.get(field + "k", 0)
        sites.append((gb, pp.get(field + "k", 0), label, stack))

    when = "at its peak" if field == "gb" else "when the profile was written"
    print(f"heap {when}: {total / 1024:.0f} KiB in all; per member (of {members}):\n")
    print("| what | bytes per member | blocks per member |")
    print("| --- | ---: | ---: |")
    for label, (gb, gbk) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"| {label} | {gb / members:,.0f} | {gbk / members:.2f} |")
    print(f"| **all** | **{total / members:,.0f}** | |")

    print("\nlargest allocation sites (innermost frames outside std and tokio first):")
    boring = r"\((alloc|core|std)/src/|dhat-|bytes-|hashbrown-|\(src/(raw_vec|vec|boxed)/|runtime/task/|^0x[0-9a-f]+: (alloc|allocate)\b"
    for gb, gbk, label, stack in sorted(sites, key=lambda s: -s[0])[:15]:
        print(f"\n{gb / members:,.0f} B/member in {gbk / members:.2f} blocks/member [{label}]")
        shown = [f for f in stack if not re.search(boring, f)]
        for frame in (shown or stack)[:4]:
            print("    " + re.sub(r"^0x[0-9a-f]+: ", "", frame)[:160])

if __name__ == "__main__":
    main()
