"""district_town.py - the township sees the district's note: on the monthly
close page, a township whose month was returned reads the note and can
submit again.  usage: district_town.py URL SHOTS_DIR ARGS_JSON
(ARGS: month, code, note)."""
import json
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
b = Browser(url, shots)
try:
    b.go("/district_close.html?month=" + args["month"])
    b.find("#close-table tr[data-code='%s'][data-state='returned']" % args["code"])
    note = b.find("#returned-note")
    if not note.is_displayed() or args["note"] not in note.text:
        fail("the township does not see the note: %r" % note.text)
    if b.finds("#close-table button.approve") or b.finds("#close-table button.return"):
        fail("a township is offered approve or return")
    b.shot("close-township")
    ok("the township sees the district's note: %s" % note.text)
    b.click("#close-table tr[data-code='%s'] button.submit" % args["code"])
    b.find("#close-table tr[data-code='%s'][data-state='submitted']" % args["code"])
    ok("and submits the month again")
    b.go("/district_report.html?month=" + args["month"])
    b.wait_text("#r-unit", args["name"])
    rows = b.finds("#r-panel1 tbody tr")
    if len(rows) != 2:  # its own row and the total
        fail("a township's report has %d rows" % len(rows))
    b.shot("report-township")
    ok("its printable report is its own, under its own name")
    b.check_local_only()
finally:
    b.close()
