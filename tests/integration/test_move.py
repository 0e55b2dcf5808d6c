#!/usr/bin/env python3
"""Moves between session-svc instances (DESIGN §6), end to end: real
Chromium, fakewa, two session-svc instances on one SESSIONS_DIR (the
shared volume of compose.yaml).

A linked user's owner is killed (kill -9): its browser goes with it, and
once store-svc counts the instance dead (10 s without a heartbeat) the
user's next request places them on the other instance, which relaunches
the browser from the same profile: ready again without a QR scan. The
killed instance, restarted, leaves the user where they are (never two
browsers on one profile). An owner that is stopped (SIGSTOP) rather than
killed keeps its browser running on the profile: the new owner waits for
the profile lock, and the old one, once it runs again, learns it lost the
user and closes its browser; the user comes back on the new owner, still
without a scan. Killed once more with nobody asking for the user, the
owner's users move on their own after 30 s of silence and come back
ready. The event stream's seq keeps rising through all of it.
Each instance takes one session (MAX_SESSIONS=1): a third user finds
both full (503 capacity_reached) until a place is free. Last, store-svc
is killed (kill -9) and started again on the same database under the
running stack: no row lost, the user still ready, seq going on. And
the owner restarted under a new id at its URL takes its users back at
once.

    test_move.py <bin-dir>        (bin-dir: session-svc and friends;
                                   buscall is in <bin-dir>/../tests)
"""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stack  # noqa: E402
import wsclient  # noqa: E402
from stack import http, wait_until  # noqa: E402
from test_session import (check, ok, link, wait_status, user_browsers,  # noqa: E402
                          browsers)
import test_session  # noqa: E402

USER = "doctor-move"
PHONE = "41791113001"
DEAD_AFTER_S = 10  # DESIGN §6: an instance silent for 10 s is dead


def owner(st, buscall, instances=("move-1", "move-2")):
    """The instance store-svc has USER placed on, or None."""
    for iid in instances:
        r = subprocess.run([buscall, st.env["STORE_URL"], "placement.list",
                            "", json.dumps({"instance": iid})],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0 and USER in json.loads(r.stdout)["users"]:
            return iid
    return None


def iso_epoch(ts):
    """Seconds since 1970 of a store timestamp (YYYY-MM-DDTHH:MM:SS.sssZ)."""
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def logs_since(st, tok, since_id):
    logs = http("GET", st.gw("/logs?limit=500"), tok).json["logs"]
    return [l for l in logs if l["id"] > since_id]


def qr_events_since(st, tok, since_id):
    return [l for l in logs_since(st, tok, since_id) if l["eventType"] == "qr"]


def last_log_id(st, tok):
    logs = http("GET", st.gw("/logs?limit=1"), tok).json["logs"]
    return logs[0]["id"] if logs else 0


def chats_ok(st, tok):
    r = http("GET", st.gw("/chats"), tok)
    return r if r.status == 200 else None


def main_move(bindir, work):
    buscall = os.path.join(bindir, "..", "tests", "buscall")
    st = stack.Stack(bindir, work, {"FAKEWA_REF_INTERVAL_MS": "15000"})
    sessions = st.env["SESSIONS_DIR"]
    inst = {}
    for n in (1, 2):
        name = "session-svc-%d" % n
        # The second listens on every interface, as in compose.yaml, and
        # registers this host's own address for the gateway to dial.
        inst["move-%d" % n] = (name, {
            "INSTANCE_ID": "move-%d" % n, "MAX_SESSIONS": "1",
            "SESSION_URL": "tcp://%s:%d" % ("127.0.0.1" if n == 1 else
                                            "0.0.0.0", stack.free_port())})
    try:
        st.start("fakewa")
        st.start("store-svc")
        st.start("notifier-svc")
        for name, env in inst.values():
            st.start(name, "session-svc", env)
        st.start("gateway")
        wait_until("gateway /health", lambda: http(
            "GET", st.gw("/health"), timeout=2).status == 200, 30)
        wait_until("fakewa", lambda: http(
            "GET", st.fake("/_fake/pages"), timeout=2).status == 200)
        wait_both(st, "both instances registered")
        ok("two session-svc instances share one SESSIONS_DIR")
        with open(os.path.join(work, "session-svc-2.log")) as f:
            reg = re.search(r"registered as (tcp://[0-9.]+:\d+)", f.read())
        check(reg is not None and "0.0.0.0" not in reg.group(1),
              "the one on every interface registered an address to dial "
              "(%s)" % (reg and reg.group(1)))

        tok = stack.token(USER)
        link(st, tok, PHONE, "Dr Move", work)
        wait_status(st, tok, "ready")
        first = owner(st, buscall)
        check(first in inst, "the user is placed on one of them (%s)" % first)
        other = [i for i in inst if i != first][0]
        prof = os.path.join(sessions, USER)
        check(len(user_browsers(sessions, USER)) == 1,
              "one browser on the user's profile")

        # kill -9 of the owner: its browser goes (pipe closed).
        mark = last_log_id(st, tok)
        st.procs.pop(inst[first][0]).kill9()
        wait_until("the owner's browser gone",
                   lambda: not user_browsers(sessions, USER) or None, 30)
        ok("kill -9 of the owner: its browser is gone")
        t0 = time.time()
        wait_until("the user ready on the other instance",
                   lambda: chats_ok(st, tok), DEAD_AFTER_S + 60, 0.5)
        took = time.time() - t0
        check(owner(st, buscall) == other,
              "the user moved to %s (%.1f s after the kill)" % (other, took))
        check(status_of(st, tok) == "ready", "and is ready there")
        check(not qr_events_since(st, tok, mark),
              "without a QR scan (no qr event since the kill)")
        check(os.path.isdir(prof), "from the same profile directory")
        check(len(user_browsers(sessions, USER)) == 1,
              "one browser on the profile")

        # The killed instance comes back: its user is no longer its own.
        restart(st, inst[first])
        time.sleep(4)  # two heartbeats: a restore would have started by now
        check(len(user_browsers(sessions, USER)) == 1,
              "the restarted instance starts no second browser")
        check(owner(st, buscall) == other and status_of(st, tok) == "ready",
              "the user stays ready where they are")

        # SIGSTOP of the (new) owner: its browser keeps the profile.
        mark = last_log_id(st, tok)
        stopped = st.procs[inst[other][0]]
        held = user_browsers(sessions, USER)
        os.kill(stopped.pid, signal.SIGSTOP)
        try:
            t0 = time.time()
            # Placed back on `first` once `other` is dead; the launch there
            # finds the profile locked by a live browser and backs off.
            wait_until("the user placed on %s" % first, lambda: (
                http("GET", st.gw("/chats"), tok) and
                owner(st, buscall) == first) or None, DEAD_AFTER_S + 30, 0.5)
            ok("a stopped owner: the user placed on %s after %.1f s"
               % (first, time.time() - t0))
            time.sleep(2)
            check(user_browsers(sessions, USER) == held,
                  "no second browser while the old one holds the profile")
        finally:
            os.kill(stopped.pid, signal.SIGCONT)
        wait_until("the old owner's browser closed",
                   lambda: not (set(user_browsers(sessions, USER)) &
                                set(held)) or None, 30)
        ok("the old owner, running again, closed its browser")
        wait_until("ready on %s" % first, lambda: chats_ok(st, tok), 60, 0.5)
        check(owner(st, buscall) == first and
              status_of(st, tok) == "ready", "the user is ready on %s" % first)
        check(not qr_events_since(st, tok, mark), "without a QR scan")
        check(len(user_browsers(sessions, USER)) == 1,
              "one browser on the profile")

        # The UI's view across both moves: one stream, seq rising through
        # events that three session-svc processes published.
        frames = wsclient.replay("127.0.0.1", st.ports["nt"],
                                 "/?token=%s&since=0" % tok)
        seqs = [f["seq"] for f in frames]
        ready = [f for f in frames if f["type"] == "ready"]
        check(seqs and all(b > a for a, b in zip(seqs, seqs[1:])),
              "the event stream's seq rises across the moves (%s)" % seqs)
        check(len(ready) >= 3 and all(
            f["data"].get("phoneNumber") == PHONE for f in ready),
            "ready once linked and once after each move (%d)" % len(ready))

        # kill -9 of the owner once more, and this time nobody asks for the
        # user: store-svc moves them on its own once the owner has been
        # silent for 30 s (STORE_RESCUE_AFTER_MS), at a heartbeat of the
        # survivor, which then relaunches them. Meanwhile /status stops
        # saying "ready" once the owner counts as dead (10 s after its last
        # heartbeat): the session runs nowhere until the move.
        mark = last_log_id(st, tok)
        st.procs.pop(inst[first][0]).kill9()
        t0 = time.time()
        seen = []

        def moved():
            seen.append((round(time.time() - t0, 1), status_of(st, tok)))
            return owner(st, buscall) == other or None
        wait_until("the user moved without a request", moved, 60, 1)
        moved_after = time.time() - t0
        errors = [t for t, s in seen if s == "error"]
        check(errors and min(errors) >= 5 and all(
            s == "ready" for t, s in seen if t < 5),
            "/status: ready until the dead owner counts as dead, then error "
            "until the move (first error at %s s)"
            % (min(errors) if errors else None))
        wait_until("ready again without a request", lambda: [
            l for l in logs_since(st, tok, mark)
            if l["eventType"] == "ready"] or None, 60, 1)
        check(moved_after >= 25, "nobody asked: the user moved to %s %.1f s "
              "after the kill, and is ready again (%.1f s)"
              % (other, moved_after, time.time() - t0))
        # Told at once, not only at the move: the survivor's heartbeat,
        # once the owner counts as dead, names the user as lost, and the
        # survivor records and publishes an error event for them.
        since = logs_since(st, tok, mark)
        lost = [l for l in since if l["eventType"] == "error" and
                (l["eventData"] or {}).get("reason") == "instance_lost"]
        back = [l for l in since if l["eventType"] == "ready"]
        check(len(lost) == 1 and back and lost[0]["id"] < min(
            l["id"] for l in back),
            "the user was told their instance died (one error event, "
            "reason instance_lost, before ready again): %d" % len(lost))
        if lost:
            told = iso_epoch(lost[0]["timestamp"]) - t0
            # Its last heartbeat was up to 2 s before the kill.
            check(DEAD_AFTER_S - 3 <= told <= moved_after,
                  "told %.1f s after the kill, before the move" % told)
        frames = wsclient.replay("127.0.0.1", st.ports["nt"],
                                 "/?token=%s&since=0" % tok)
        check([f for f in frames if f["type"] == "error" and
               f["data"].get("reason") == "instance_lost"],
              "and the event stream carried it")
        check(not qr_events_since(st, tok, mark), "without a QR scan")
        check(status_of(st, tok) == "ready", "/status: ready on the new owner")
        check(len(user_browsers(sessions, USER)) == 1,
              "one browser on the profile")
        restart(st, inst[first])

        # An owner stopped long enough to count as dead, then running again
        # before anyone moves its users: they are told it was lost, then,
        # once it registered again and still holds them, that they are
        # ready (reason "resumed"), and nothing else changes.
        mark = last_log_id(st, tok)
        paused = st.procs[inst[other][0]]
        held = user_browsers(sessions, USER)
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            wait_until("the user told of the lost instance", lambda: [
                l for l in logs_since(st, tok, mark)
                if (l["eventData"] or {}).get("reason") == "instance_lost"]
                or None, DEAD_AFTER_S + 15, 0.5)
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        t0 = time.time()
        wait_until("ready again, resumed", lambda: [
            l for l in logs_since(st, tok, mark)
            if l["eventType"] == "ready" and
            l["eventData"].get("reason") == "resumed"] or None, 20, 0.5)
        ok("an owner paused past the dead mark: its user told it was lost, "
           "then ready again %.1f s after it ran again" % (time.time() - t0))
        resumed = [l for l in logs_since(st, tok, mark)
                   if l["eventType"] == "ready"][0]["eventData"]
        check(resumed.get("phoneNumber") == PHONE,
              "the resumed event carries the account (%r)" % resumed)
        check(owner(st, buscall) == other and status_of(st, tok) == "ready"
              and user_browsers(sessions, USER) == held,
              "the user stayed on %s, ready, on the same browser" % other)

        # MAX_SESSIONS=1 each: a second user takes the other instance, a
        # third finds both full, and gets in once a place is free.
        tv, tw = stack.token("doctor-v"), stack.token("doctor-w")
        r = http("POST", st.gw("/connect"), tv)
        check(r.status == 202, "a second user connects (%r)" % r)
        wait_status(st, tv, "qr")
        r = http("POST", st.gw("/connect"), tw)
        check(r.status == 503 and r.json.get("code") == "capacity_reached"
              and "MAX_SESSIONS" in r.json.get("error", ""),
              "a third finds every instance full: 503 capacity_reached, "
              "naming the limit (%r)" % r)
        r = http("POST", st.gw("/disconnect"), tv)
        check(r.status == 200, "the second user disconnects (%r)" % r)
        wait_until("a place for the third", lambda: http(
            "POST", st.gw("/connect"), tw).status == 202 or None, 15, 0.5)
        wait_status(st, tw, "qr")
        ok("then the third gets in")
        check(owner(st, buscall) == other and status_of(st, tok) == "ready",
              "and the first user stayed ready where they were")

        # kill -9 of store-svc under the running stack, and back on the same
        # database: nothing recorded is lost, the instances stay placed
        # and alive, and the event stream's seq goes on from where it was.
        before = wsclient.replay("127.0.0.1", st.ports["nt"],
                                 "/?token=%s&since=0" % tok)
        old_ids = {l["id"] for l in http("GET", st.gw("/logs?limit=500"),
                                          tok).json["logs"]}
        st.procs.pop("store-svc").kill9()
        time.sleep(1)
        st.start("store-svc")
        wait_both(st, "store-svc back", 30)
        check(status_of(st, tok) == "ready" and owner(st, buscall) == other,
              "after a kill -9 of store-svc the user is still ready, placed "
              "where they were")
        r = http("POST", st.fake("/_fake/incoming"),
                 body={"phone": PHONE, "from": "41797773001",
                       "body": "after the store's restart"})
        check(r.status == 200, "a message comes in (%r)" % r)
        wait_until("the message event recorded", lambda: [
            l for l in http("GET", st.gw("/logs?limit=500"), tok).json["logs"]
            if l["eventType"] == "message"] or None, 30, 0.5)
        ids = {l["id"] for l in http("GET", st.gw("/logs?limit=500"),
                                     tok).json["logs"]}
        check(old_ids < ids, "no recorded row lost (%d rows before, %d now)"
              % (len(old_ids), len(ids)))
        after = wsclient.replay("127.0.0.1", st.ports["nt"],
                                "/?token=%s&since=%d"
                                % (tok, before[-1]["seq"]))
        msg = [f for f in after if f["type"] == "message"]
        check(msg and msg[0]["seq"] > before[-1]["seq"] and
              all(b > a for a, b in zip([f["seq"] for f in after],
                                        [f["seq"] for f in after][1:])),
              "the new event's seq goes on from %d (%s)"
              % (before[-1]["seq"], [f["seq"] for f in after]))

        # The owner restarts under a new id at the same URL (INSTANCE_ID's
        # default, hostname-pid, changes with every start): store-svc sees
        # that the new process replaced the silent one, and its users move
        # at once, not 10 or 30 s later, with no request of theirs.
        mark = last_log_id(st, tok)
        name, env = inst[other]
        st.procs.pop(name).kill9()
        wait_until("the owner's browser gone",
                   lambda: not user_browsers(sessions, USER) or None, 30)
        t0 = time.time()
        st.start("session-svc-3", "session-svc",
                 dict(env, INSTANCE_ID="move-3"))
        wait_until("ready again on the replacement", lambda: [
            l for l in logs_since(st, tok, mark)
            if l["eventType"] == "ready"] or None, 60, 0.5)
        took = time.time() - t0
        check(owner(st, buscall, ("move-1", "move-2", "move-3")) == "move-3"
              and took < DEAD_AFTER_S,
              "a restart under a new id at the same URL: the user is ready "
              "on it %.1f s after its start, unasked" % took)
        check(not qr_events_since(st, tok, mark), "without a QR scan")
    finally:
        for name in ("gateway", "session-svc-1", "session-svc-2",
                     "session-svc-3", "notifier-svc", "store-svc", "fakewa"):
            p = st.procs.pop(name, None)
            if p is not None:
                try:
                    p.stop()
                except AssertionError as e:
                    print("# " + str(e), flush=True)
    check(not browsers(sessions), "no Chromium left")


def restart(st, instance):
    """Start a killed instance again (same id and URL); wait until both
    answer /health."""
    name, env = instance
    st.start(name, "session-svc", env)
    wait_both(st, "%s registered again" % name)


def wait_both(st, what, timeout=15):
    """Until the gateway's /health sees both session-svc instances answer."""
    wait_until(what, lambda: http("GET", st.gw("/health")).json.get(
        "sessionServices") == 2 or None, timeout, 0.5)


def status_of(st, tok):
    return (http("GET", st.gw("/status"), tok).json or {}).get("status")


def main():
    bindir = sys.argv[1]
    work = tempfile.mkdtemp(prefix="test_move.")
    try:
        main_move(bindir, work)
    except Exception as e:  # a timeout or a failed check
        if not (isinstance(e, AssertionError) and
                str(e).startswith("not ok")):
            test_session.FAILED += 1
        print("# stopped: %s" % e, flush=True)
    if test_session.FAILED == 0 and not os.environ.get("KEEP_WORK"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("# work directory kept: " + work)
    print("%d passed, %d failed" % (test_session.PASSED, test_session.FAILED))
    return 1 if test_session.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
