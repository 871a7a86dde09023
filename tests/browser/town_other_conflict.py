"""town_other_conflict.py - the other place of a migration resolves a
conflict in the browser (issue 18, gap d): its submitted date raced the
registering township's.  A merge that changes what the other place may
not (the employer) is refused next to the field with the form's rule and
wording, and nothing is stored; a typed merged date is stored and synced.

usage: town_other_conflict.py URL SHOTS ARGS_JSON
ARGS_JSON: {"mig": migration id, "typed": "YYYY-MM-DD", "t1": DIR}"""
import json
import os
import subprocess
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
POPSYNC = os.environ["POPSYNC"]


def post(b, path, body):
    return b.d.execute_async_script(
        "const done = arguments[2];"
        "fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/json',"
        " 'X-CSRF-Token': ps.session.csrf}, body: JSON.stringify(arguments[1])})"
        ".then(r => r.json().then(j => done({status: r.status, body: j})))", path, body)


def pending(b):
    return b.d.execute_async_script("const done = arguments[0];"
                                    "fetch('/api/sync').then(r => r.json()).then(j => done(String(j.pending)))")


b = Browser(url, shots)
try:
    b.go("/conflicts.html")
    b.click("#refresh")
    sel = "section.conflict[data-record='%s']" % args["mig"]
    sec = b.wait(lambda d: d.find_elements("css selector", sel), "the conflict of the case", timeout=60)[0]
    cid = sec.get_attribute("id")[len("conflict-"):]
    b.shot("other-place-conflict")

    # A merge that also changes the employer: refused with the form's rule.
    r = post(b, "/api/conflicts/resolve", {"id": cid, "values": {"submitted_date": args["typed"],
                                                                 "employer": "别的公司"}})
    errs = {e["field"]: e["reason"] for e in r["body"].get("errors", [])}
    if r["status"] != 200 or "employer" not in errs or "对方地" not in errs["employer"] or \
            "通报日期" not in errs["employer"]:
        fail("a merge changing the employer at the other place: %r" % r)
    if pending(b) != "0":
        fail("a refused resolution was stored")
    ok("a merge changing the employer is refused next to the field (%s); nothing stored" % errs["employer"])

    # The merged date typed on the page: stored and synced.
    merged = sec.find_element("css selector", "input.merged[data-field=submitted_date]")
    merged.clear()
    merged.send_keys(args["typed"])  # focusing it chooses the typed value
    sec.find_element("css selector", "button.resolve").click()
    b.wait(lambda d: "冲突已解决" in b.status_text(), "the resolution synced", timeout=60)
    b.shot("other-place-conflict-resolved")
    subprocess.run([POPSYNC, "--data", args["t1"], "sync"], check=True, capture_output=True, timeout=60)
    got = json.loads(subprocess.run([POPSYNC, "--data", args["t1"], "show", args["mig"], "--format", "json"],
                                    check=True, capture_output=True, text=True, timeout=60).stdout)
    if got.get("submitted_date") != args["typed"]:
        fail("the registering township sees submitted_date %r after the resolution" % got.get("submitted_date"))
    ok("the other place's typed merged date is stored, synced and seen by the registering township")
finally:
    b.close()
