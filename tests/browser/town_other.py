"""town_other.py - the other place of a migration edits the case in the
browser (issue 18, the web form's half of issue 16 point 5): a change it
may not make (the employer) is refused on save with the reason next to
the field, in Chinese, and nothing is stored; setting the submitted date,
which the other place may set, is saved.  Screenshots into SHOTS.

usage: town_other.py URL SHOTS ARGS_JSON
ARGS_JSON: {"mig": migration id, "submitted": "YYYY-MM-DD"}"""
import json
import os
import subprocess
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
POPSYNC = os.environ["POPSYNC"]


def cli(*a):
    return subprocess.run([POPSYNC] + list(a), check=True, capture_output=True, text=True, timeout=60).stdout


def set_value(b, css, value):
    e = b.find(css)
    b.d.execute_script("arguments[0].value = arguments[1];"
                       "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", e, value)


b = Browser(url, shots)
try:
    b.go("/edit.html?kind=migration&id=" + args["mig"])
    b.wait(lambda d: d.find_element("css selector", "#f-employer").get_attribute("value") == "钢城钢铁公司",
           "the case's employer in the form")
    b.type("#f-employer", "别的公司")
    b.click("#save")
    err = b.wait(lambda d: d.find_element("css selector", "#err-employer").text, "the refusal next to the employer")
    if "对方地" not in err or "通报日期" not in err:
        fail("the refusal next to the employer does not say why in Chinese: " + err)
    if "/edit.html" not in b.d.current_url:
        fail("a refused edit left the form")
    b.shot("other-place-refused")
    stored = json.loads(cli("--data", os.path.join(os.environ["T"], "t3"), "show", args["mig"], "--format", "json"))
    if stored.get("employer") != "钢城钢铁公司":
        fail("the refused edit was stored: %r" % stored.get("employer"))
    ok("an edit the other place may not make is refused next to the field (%s); nothing stored" % err)

    b.type("#f-employer", "钢城钢铁公司")
    set_value(b, "#f-submitted_date", args["submitted"])
    b.click("#save")
    b.wait(lambda d: "/record.html" in d.current_url, "the case's page after a permitted edit")
    b.wait_text("#state", "待同步")
    b.shot("other-place-submitted")
    stored = json.loads(cli("--data", os.path.join(os.environ["T"], "t3"), "show", args["mig"], "--format", "json"))
    if stored.get("submitted_date") != args["submitted"]:
        fail("the submitted date was not stored: %r" % stored)
    ok("the other place sets the submitted date in the form")
finally:
    b.close()
