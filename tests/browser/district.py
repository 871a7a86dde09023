"""district.py - the district administrator's month in the browser (issue 18
points 3 and 5, district half): the dashboard's charts are drawn (canvas
pixels, not blank) with the monthly report's counts, a township drills
down, one township's month is returned with a note and another approved,
the monthly report page prints to a PDF (Chrome's Page.printToPDF), the
quality report links to the records, the node table lists the caches, and
no page loads anything from outside 127.0.0.1.

usage: district.py URL SHOTS_DIR ARGS_JSON
ARGS: month, report (path of `popsync report monthly --format json`),
      returned (township code to return), approved (township to approve),
      note, nodes (certificate names expected in the node table)."""
import base64
import json
import re
import sys

from uitest import Browser, fail, ok

url, shots = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
month = args["month"]
report = json.load(open(args["report"]))
want = {r["orgunit"]: r for r in report["rows"]}

b = Browser(url, shots)
try:
    # --- dashboard -----------------------------------------------------------
    b.go("/district.html?month=" + month)
    b.find("#indicators tbody tr")
    b.shot("dashboard")
    for cid in ("chart-persons", "chart-births", "chart-migration", "chart-rates", "chart-benefits",
                "chart-services", "chart-trend"):
        # pixels drawn on the canvas: not blank
        n = b.d.execute_script(
            "const c = document.getElementById(arguments[0]); const x = c.getContext('2d');"
            "const p = x.getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 3; i < p.length; i += 4) if (p[i] !== 0) n++; return [n, c.width * c.height];", cid)
        if n[0] < 500:
            fail("canvas %s is blank (%d of %d pixels drawn)" % (cid, n[0], n[1]))
        png = b.d.execute_script("return document.getElementById(arguments[0]).toDataURL('image/png')", cid)
        if not png.startswith("data:image/png;base64,") or len(png) < 2000:
            fail("canvas %s gives no image" % cid)
    ok("the seven charts are drawn (canvas pixels)")
    # The charts hold the report's counts, township by township.
    charts = b.d.execute_script(
        "const o = {}; for (const [k, c] of Object.entries(dist.charts)) o[k] = "
        "{labels: c.data.labels, sets: c.data.datasets.map(s => ({label: s.label, data: s.data}))}; return o;")
    rows = [r for r in report["rows"] if r["orgunit"]]
    names = [r["name"] for r in rows]
    if charts["chart-births"]["labels"] != names:
        fail("chart townships %r, report %r" % (charts["chart-births"]["labels"], names))
    for cid, keys in (("chart-persons", ["persons_total"]), ("chart-births", ["births_male", "births_female"]),
                      ("chart-migration", ["inflow", "outflow"]), ("chart-benefits", ["benefits_paid"]),
                      ("chart-services", ["visits_prepregnancy_check", "visits_reproductive_check",
                                          "visits_followup", "visits_contraceptive_supplies",
                                          "visits_consultation"])):
        for i, k in enumerate(keys):
            got = charts[cid]["sets"][i]["data"]
            exp = [r[k] for r in rows]
            if got != exp:
                fail("%s %s: chart %r, report %r" % (cid, k, got, exp))
    trend = charts["chart-trend"]["sets"][0]["data"]
    if len(trend) != 12 or trend[-1] != want[""]["births_total"]:
        fail("trend of births %r does not end with the month's %d" % (trend, want[""]["births_total"]))
    # The table: same counts.
    for r in rows + [want[""]]:
        code = r["orgunit"] or "total"
        for k in ("persons_total", "births_male", "births_female", "births_total", "inflow", "outflow",
                  "benefits_paid", "visits_total"):
            td = b.find("#indicators tr[data-code='%s'] td[data-key='%s']" % (code, k))
            if td.text != str(r[k]):
                fail("table %s %s: %s, report %s" % (code, k, td.text, r[k]))
    ok("charts and table show the monthly report's counts for %d townships" % len(rows))
    # Drill down: click a township's name.
    first = rows[0]
    b.click("#indicators a.drill[data-code='%s']" % first["orgunit"])
    b.wait_text("#drill-name", first["name"])
    b.wait(lambda d: d.execute_script("return !!dist.charts['chart-drill']"), "drill-down chart")
    td = b.find("#drill-table td[data-key='births_total']")
    if td.text != str(first["births_total"]):
        fail("drill-down births %s, report %s" % (td.text, first["births_total"]))
    b.shot("dashboard-drill")
    ok("clicking a township shows its month and 12-month trend")
    # Overdue feedback, counted when asked: the quality report's number.
    b.click("#count-overdue")
    b.wait_text("#indicators tr[data-code='total'] td[data-key='feedback_overdue']", str(args["overdue"]))
    ok("overdue feedback counted: %d, as the quality report" % args["overdue"])
    b.check_local_only()

    # --- monthly close -------------------------------------------------------
    b.go("/district_close.html?month=" + month)
    for code in (args["returned"], args["approved"]):
        b.find("#close-table tr[data-code='%s'][data-state='submitted']" % code)
    b.shot("close-before")
    # A return without a note is not sent.
    b.click("#close-table tr[data-code='%s'] button.return" % args["returned"])
    b.wait(lambda d: "说明" in b.status_text(), "the note is required")
    b.type("#close-table tr[data-code='%s'] input.note" % args["returned"], args["note"])
    b.click("#close-table tr[data-code='%s'] button.return" % args["returned"])
    b.find("#close-table tr[data-code='%s'][data-state='returned']" % args["returned"])
    b.wait_text("#close-table tr[data-code='%s'] td.note-text" % args["returned"], args["note"])
    b.click("#close-table tr[data-code='%s'] button.approve" % args["approved"])
    b.find("#close-table tr[data-code='%s'][data-state='approved']" % args["approved"])
    b.shot("close-after")
    ok("returned %s with a note and approved %s" % (args["returned"], args["approved"]))
    b.check_local_only()

    # --- printable monthly report -> PDF ---------------------------------------
    b.go("/district_report.html?month=" + month)
    b.find("#r-panel1 tbody tr")
    b.wait_text("#r-panel2", "已批准")
    b.shot("report")
    pdf = b.d.execute_cdp_cmd("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True})
    data = base64.b64decode(pdf["data"])
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    if not data.startswith(b"%PDF") or pages < 1:
        fail("printToPDF gave no PDF with pages (%d bytes, %d pages)" % (len(data), pages))
    with open(shots + "/monthly-report.pdf", "wb") as f:
        f.write(data)
    ok("the monthly report page prints to a PDF of %d page(s), %d bytes" % (pages, len(data)))
    b.check_local_only()

    # --- quality report: links to the records ----------------------------------
    b.go("/district_quality.html")
    links = b.finds("#issues a.record-link")
    if not links:
        fail("no issue links to a record")
    href = links[0].get_attribute("href")
    if "/record.html?id=" not in href:
        fail("issue link %s" % href)
    b.shot("quality")
    ok("the quality report links %d issue(s) to their records" % len(links))
    b.check_local_only()

    # --- status --all -----------------------------------------------------------
    b.go("/district_nodes.html")
    b.find("#nodes tbody tr")
    text = b.find("#nodes").text
    for n in args["nodes"]:
        if n not in text:
            fail("node %s not in the node table" % n)
    b.shot("nodes")
    ok("the node table lists %s" % ", ".join(args["nodes"]))
    b.check_local_only()
    ok("no resource from outside 127.0.0.1 (%d requests seen)" % len(b.seen))
finally:
    b.close()
