"""town.py - a township clerk's work in the browser (issue 18 point 5,
township half): add a person (first with an invalid ID number: the error
is next to the field), find her by name, add a birth choosing the mother
from the pick-list, sync, correct a refused entry, resolve a conflict made
by another cache; plus the security refusals and that nothing is loaded
from outside 127.0.0.1.  Screenshots of each page into SHOTS.

usage: town.py URL SHOTS ARGS_JSON
ARGS_JSON: {"id_good": ..., "id_bad": ..., "gone_name": ..., "t2": "DIR"}"""
import json
import os
import subprocess
import sys
import time

from uitest import Browser, fail, ok, security_checks

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
POPSYNC = os.environ["POPSYNC"]


def cli(*a):
    return subprocess.run([POPSYNC] + list(a), check=True, capture_output=True, text=True, timeout=60).stdout


def set_value(b, css, value):
    """Date inputs take their value from script (typing is locale-bound)."""
    e = b.find(css)
    b.d.execute_script("arguments[0].value = arguments[1];"
                       "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", e, value)


def select(b, css, value):
    b.d.execute_script("arguments[0].value = arguments[1];", b.find(css), value)


def pick(b, field, text, expect):
    """Types into a pick-list and chooses the entry showing expect."""
    b.type("#pick-" + field, text)
    li = b.wait_text("#picks-" + field + " li.pick", expect)
    li.click()
    b.wait(lambda d: d.find_element("css selector", "#f-" + field).get_attribute("value"), field + " chosen")


def sync(b):
    """Runs a sync from the sync page; its percentage must end at 100 with
    every change sent and the server's feed read (gap c)."""
    b.go("/sync.html")
    b.click("#sync-go")
    b.wait(lambda d: d.find_elements("css selector", "#sync-result"), "sync result", timeout=60)
    res = b.find("#sync-result").text
    if "完成" in res:
        pct = b.wait(lambda d: d.find_element("css selector", "#sync-percent").is_displayed() and
                     d.find_element("css selector", "#sync-percent").text, "the percentage")
        p = b.d.execute_async_script("const done = arguments[0];"
                                     "fetch('/api/sync').then(r => r.json()).then(j => done(j.progress))")
        if pct != "100%" or p["percent"] != 100 or p["pushed"] != p["push_total"] or \
                p["pulled"] != p["pull_total"] or b.find("#progress").get_attribute("value") != "100":
            fail("the sync's progress at its end: %r %r" % (pct, p))
    return res


security_checks(url)
b = Browser(url, shots)
try:
    # --- a new person: an invalid ID number is shown next to its field.
    b.go("/edit.html?kind=person")
    b.type("#f-name", "王芳")
    select(b, "#f-sex", "female")
    b.type("#f-id_number", args["id_bad"])
    b.wait(lambda d: d.find_element("css selector", "#err-id_number").text, "ID number error while typing")
    b.shot("person-form-invalid-id")
    b.click("#save")
    err = b.wait(lambda d: d.find_element("css selector", "#err-id_number").text, "ID number error after save")
    if "校验" not in err and "身份证" not in err:
        fail("the error next to the ID number is not in Chinese: " + err)
    ok("an invalid ID number is refused with the error next to the field (%s)" % err)
    b.type("#f-id_number", args["id_good"])
    b.wait(lambda d: not d.find_element("css selector", "#err-id_number").text, "error cleared")
    b.click("#save")
    b.wait(lambda d: "/record.html" in d.current_url, "the person's page")
    b.wait_text("#state", "待同步")
    b.shot("person-page-new")
    ok("person added through the form; shown as waiting to sync")

    # --- the same ID number again: a duplicate warning as it is typed.
    b.go("/edit.html?kind=person")
    b.type("#f-id_number", args["id_good"])
    b.wait_text("#warn-id_number", "王芳")
    b.shot("person-form-duplicate")
    ok("duplicate warning while typing the ID number")

    # --- find her by name.
    b.go("/")
    b.type("#q", "王芳")
    b.click("#search-go")
    b.wait_text("#results a.person-link", "王芳").click()
    b.wait(lambda d: "/record.html" in d.current_url, "person page from the search")
    b.wait_text("td[data-field=id_number]", args["id_good"])
    b.shot("search-to-person")
    ok("found by name, person page opened")
    person_url = b.d.current_url

    # --- a birth, the mother chosen from the pick-list.
    b.go("/edit.html?kind=birth")
    pick(b, "mother_id", "王芳", "王芳")
    select(b, "#f-child_sex", "male")
    set_value(b, "#f-birth_date", "2025-03-01")
    b.type("#f-birth_order", "1")
    b.shot("birth-form")
    b.click("#save")
    b.wait(lambda d: "/record.html" in d.current_url, "the birth's page")
    b.wait_text("td[data-field=mother_id]", "王芳")
    b.d.get(person_url)
    b.wait_text("#linked-births", "2025-03-01")
    b.shot("person-with-birth")
    ok("birth added with the mother from the pick-list; on the mother's page")

    # --- a visit for a person the district has deleted meanwhile: refused.
    b.go("/edit.html?kind=service_visit")
    pick(b, "person_id", args["gone_name"], args["gone_name"])
    select(b, "#f-service", b.d.execute_script("return document.querySelector('#f-service option:nth-child(2)').value"))
    set_value(b, "#f-visit_date", "2025-04-02")
    b.click("#save")
    b.wait(lambda d: "/record.html" in d.current_url, "the visit's page")

    b.go("/sync.html")
    pending = int(b.find("#pending-count").text)
    res = sync(b)
    b.shot("sync-done")
    if "退回 1" not in res:
        fail("the sync should have had one change refused: " + res)
    p = b.d.execute_async_script("const done = arguments[0];"
                                 "fetch('/api/sync').then(r => r.json()).then(j => done(j.progress))")
    if p["push_total"] != pending or p["pull_total"] < 1:
        fail("progress totals: %r for %d changes waiting" % (p, pending))
    ok("sync from the browser: %s; progress %d%% (sent %d/%d, feed read %d/%d)" %
       (res, p["percent"], p["pushed"], p["push_total"], p["pulled"], p["pull_total"]))

    b.go("/refused.html")
    b.wait_text("#refused tbody tr", args["gone_name"])
    b.shot("refused-list")
    b.click("#refused a.correct")
    b.wait(lambda d: "/edit.html?refused=" in d.current_url, "the correction form")
    b.find("#refused-reasons li")
    pick(b, "person_id", "王芳", "王芳")
    b.shot("refused-correct")
    b.click("#save")
    b.wait(lambda d: "/record.html" in d.current_url, "the corrected visit")
    res = sync(b)
    if "退回 0" not in res:
        fail("the corrected change was refused again: " + res)
    b.wait_text("#refused-count", "0")
    ok("refused entry corrected in the browser and accepted")

    # --- a conflict made by another cache.
    b.d.get(person_url)
    b.wait_text("#state", "已同步")
    pid = b.d.current_url.split("id=")[1].split("&")[0]
    cli("--data", args["t2"], "sync")
    b.go("/edit.html?kind=person&id=" + pid)
    b.type("#f-phone", "13100000001")
    b.click("#save")
    b.wait(lambda d: "/record.html" in d.current_url, "edited person")
    time.sleep(1.1)
    cli("--data", args["t2"], "edit", pid, "--set", "phone=13100000002")
    cli("--data", args["t2"], "sync")
    sync(b)
    b.go("/conflicts.html")
    sec = b.wait(lambda d: d.find_elements("css selector", "section.conflict[data-record='%s']" % pid), "the conflict")[0]
    b.shot("conflict")
    if "13100000001" not in sec.text or "13100000002" not in sec.text:
        fail("both sides not shown: " + sec.text)
    sec.find_element("css selector", "input.keep-mine").click()
    sec.find_element("css selector", "button.resolve").click()
    b.wait_text("#status", "冲突已解决", timeout=60)
    cli("--data", args["t2"], "sync")
    phone = json.loads(cli("--data", args["t2"], "show", pid, "--format", "json"))["phone"]
    if phone != "13100000001":
        fail("the other cache sees phone %s after 'keep mine'" % phone)
    ok("conflict made by another cache resolved field by field (mine) and synced")

    # --- the person's versions, from the server: who and when for each.
    b.d.get(person_url)
    b.wait_text("#state", "已同步")
    rows = b.wait(lambda d: d.find_elements("css selector", "#versions-table tbody tr"), "the versions", timeout=30)
    if len(rows) < 3:
        fail("the person page shows %d versions, want 3 (created, the other cache's edit, the resolution)" % len(rows))
    for r in rows:
        if "town1" not in r.find_element("css selector", "td.who").text or \
                not r.find_element("css selector", "td.when").text.strip():
            fail("a version without who or when: " + r.text)
    if "设备 " not in rows[1].find_element("css selector", "td.who").text or \
            "电话" not in rows[1].find_element("css selector", "td.changed").text:
        fail("the other cache's edit (its device, the phone changed): " + rows[1].text)
    if "本设备" not in rows[-1].find_element("css selector", "td.who").text:
        fail("the resolution was made on this device: " + rows[-1].text)
    b.d.execute_script("document.getElementById('versions').scrollIntoView()")
    b.shot("person-versions")
    ok("the person's page lists %d versions with who and when (from the server)" % len(rows))

    # --- import: a preview lists the bad row by line, nothing is stored;
    # the rejected rows download; the import stores the good row.
    csv = os.path.join(os.environ["T"], "人员.csv")
    with open(csv, "w", encoding="utf-8") as f:
        f.write("姓名,身份证号,性别\n钱八,%s,男\n孙九,%s,女\n" % (args["id_import"], args["id_bad"]))
    b.go("/import.html")
    select(b, "#kind", "person")
    b.find("#file").send_keys(csv)
    b.click("#preview")
    b.wait_text("#summary", "有错 1")
    b.wait_text("#errors tbody tr", "校验")
    line = b.find("#errors tbody tr td").text
    if line != "3":
        fail("the bad row is line 3 of the file, shown as %r" % line)
    b.shot("import-preview")
    rej = b.d.execute_async_script("const done = arguments[0];"
                                   "fetch('/api/import/rejects').then(r => r.text()).then(done)")
    if "孙九" not in rej or "错误原因" not in rej:
        fail("the rejected rows file: %r" % rej[:200])
    b.go("/")
    b.type("#q", "钱八")
    b.click("#search-go")
    b.wait_text("#status", "没有找到")
    b.go("/import.html")
    select(b, "#kind", "person")
    b.find("#file").send_keys(csv)
    b.click("#preview")
    b.wait_text("#summary", "可导入 1")
    b.click("#import")
    b.wait_text("#summary", "已导入 1")
    b.shot("import-done")
    b.go("/")
    b.type("#q", "钱八")
    b.click("#search-go")
    b.wait_text("#results a.person-link", "钱八")
    ok("import: preview with the error by line, rejected rows downloaded, good row imported")

    # --- migration cases awaiting this place, with their deadlines.
    b.go("/migrations.html")
    row = b.wait_text("#cases tbody tr", "孙七")
    if "待通报" not in row.text or "剩" not in row.text:
        fail("the migration case: " + row.text)
    b.shot("migrations")
    ok("migration case awaiting this place's submission, with its deadline")

    # --- the printable page of one record (print CSS hides the navigation).
    b.d.get(person_url)
    b.wait_text("#state", "已同步")
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    if b.find("nav").is_displayed() or not b.find("#fields").is_displayed():
        fail("the print view shows the navigation or hides the record")
    b.shot("person-print")
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    ok("printable record page")

    # --- the other pages, for their screenshots and the local-only check.
    for page, name in (("/records.html", "records"), ("/sync.html", "sync"), ("/refused.html", "refused-empty"),
                       ("/conflicts.html", "conflicts-none")):
        b.go(page)
        time.sleep(0.3)
        b.shot(name)
    b.d.get(person_url)
    b.wait_text("#state", "已同步")
    b.shot("person-synced")
    b.check_local_only()
    ok("no page loaded anything from outside 127.0.0.1 (%d requests seen)" % len(b.seen))
finally:
    b.close()
