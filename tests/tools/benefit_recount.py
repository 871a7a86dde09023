#!/usr/bin/env python3
"""An independent recount of benefit entitlements (issue 20 point 4).

Written from docs/benefits.md and the scheme table alone (it reads the table
popsync prints with `popsync benefits schemes`), not from client/benefits.c.

  benefit_recount.py generate DIR
      writes DIR/households.csv, DIR/persons_t1.csv, DIR/persons_t2.csv,
      DIR/births_t1.csv, DIR/births_t2.csv and DIR/district.json: a district
      of known families (only children, two daughters, two sons, a deceased
      and a disabled only child, rural and urban registration, parents
      crossing the age thresholds in the middle of a year, first births,
      a family giving up a further birth).
  benefit_recount.py entitled SCHEMES.json DISTRICT.json FROM TO
      prints one line "person scheme period amount_fen" per entitlement of
      the periods ending FROM..TO (YYYYMMDD), sorted.
  benefit_recount.py owed SCHEMES.json DISTRICT.json PAID.json FROM TO
      prints "family owed_fen" per family owed anything, sorted, where
      PAID.json is a list of {person_id, scheme, period, amount_fen}.
"""
import calendar
import csv
import json
import os
import sys
import uuid

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def id_number(birth, serial, male):
    d = "110105" + birth.replace("-", "") + "%02d%d" % (serial % 100, (1 if male else 0) + 2 * (serial % 4))
    return d + "10X98765432"[sum(int(a) * b for a, b in zip(d, W)) % 11]


def generate(out):
    serial = [0]
    persons, births, households = [], [], []

    def person(town, name, birth, male, **kw):
        serial[0] += 1
        p = dict(id=str(uuid.uuid4()), town=town, name=name, birth_date=birth, male=male,
                 id_number=id_number(birth, serial[0], male), **kw)
        persons.append(p)
        return p

    def family(town, key, mother_birth, father_birth, hukou, children, **mkw):
        hh = str(uuid.uuid4())
        households.append(dict(id=hh, town=town, address="%s号" % key))
        m = person(town, key + "母", mother_birth, False, hukou=hukou, married=True, household=hh, **mkw)
        if father_birth:
            person(town, key + "父", father_birth, True, hukou=hukou, married=True, household=hh)
        for order, (birth, male, extra) in enumerate(children, 1):
            c = person(town, key + "子%d" % order, birth, male, hukou=hukou, household=hh, **extra)
            births.append(dict(town=town, mother=m["id"], child=c["id"], male=male, birth_date=birth, order=order))
        return m

    # town 1: rural families
    family("t1", "甲", "1962-03-10", "1961-08-01", "rural", [("1988-05-01", True, {})])          # only son; parents turn 60 in 2022 / 2021
    family("t1", "乙", "1964-11-20", "1966-02-02", "rural", [("1990-02-03", False, {}), ("1993-07-04", False, {})])  # two daughters
    family("t1", "丙", "1955-01-05", "1954-04-04", "rural", [("1980-01-01", True, {}), ("1982-01-01", True, {})])    # two sons: nothing
    family("t1", "丁", "1990-03-03", "1989-03-03", "rural", [("2015-06-06", False, {})], gave_up="2022-05-01")       # gives up a second birth
    # town 2: urban families
    family("t2", "戊", "1975-06-15", "1974-01-01", "urban", [("2000-01-01", True, {"deceased": "2023-03-10"})])    # deceased only child
    family("t2", "己", "1970-09-01", None, "urban", [("1995-02-02", False, {"disability": 2})])                     # disabled only child, mother alone
    family("t2", "庚", "1995-01-01", "1994-01-01", "urban", [("2021-04-10", True, {})])                              # first birth before the scheme
    family("t2", "辛", "1996-02-02", "1995-02-02", "urban", [("2023-07-20", False, {})])                             # first birth in 2023
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "households.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "address"])
        for h in households:
            w.writerow([h["id"], h["address"]])
    for town in ("t1", "t2"):
        with open(os.path.join(out, "households_%s.csv" % town), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "address"])
            for h in households:
                if h["town"] == town:
                    w.writerow([h["id"], h["address"]])
        with open(os.path.join(out, "persons_%s.csv" % town), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "id_number", "hukou_type", "marital_status", "household_id", "deceased_date",
                        "disability_grade", "gave_up_birth_date"])
            for p in persons:
                if p["town"] == town:
                    w.writerow([p["id"], p["name"], p["id_number"], p.get("hukou", ""),
                                "married" if p.get("married") else "", p.get("household", ""),
                                p.get("deceased", ""), p.get("disability", ""), p.get("gave_up", "")])
        with open(os.path.join(out, "births_%s.csv" % town), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["mother_id", "child_id", "child_sex", "birth_date", "birth_order"])
            for b in births:
                if b["town"] == town:
                    w.writerow([b["mother"], b["child"], "male" if b["male"] else "female", b["birth_date"], b["order"]])
    json.dump(dict(persons=persons, births=births), open(os.path.join(out, "district.json"), "w"),
              ensure_ascii=False, indent=1)


# ---- the recount -------------------------------------------------------------------------

def ymd(s):
    return int(s.replace("-", "")) if s else 0


def years(born, at):
    # completed years between two YYYYMMDD dates
    if not born or at < born:
        return -1
    y = at // 10000 - born // 10000
    if at % 10000 < born % 10000:
        y -= 1
    return y


def month_start(s, last):
    y, m = int(s[:4]), int(s[5:7])
    return y * 10000 + m * 100 + (calendar.monthrange(y, m)[1] if last else 1)


def facts(d, mother, rec, at):
    kids = [b for b in d["births"] if b["mother"] == mother["id"] and ymd(b["birth_date"]) <= at]
    byid = {p["id"]: p for p in d["persons"]}
    f = dict(age=years(ymd(rec["birth_date"]), at), mother_age=years(ymd(mother["birth_date"]), at),
             female=0 if rec["male"] else 1, rural=int(rec.get("hukou") == "rural"),
             urban=int(rec.get("hukou") == "urban"), children=len(kids),
             sons=sum(1 for k in kids if k["male"]), daughters=sum(1 for k in kids if not k["male"]),
             deceased_children=0, living_children=0, disabled_children=0,
             gave_up=int(bool(mother.get("gave_up")) and ymd(mother.get("gave_up")) <= at))
    ages = []
    for k in kids:
        c = byid[k["child"]]
        if c.get("deceased") and ymd(c["deceased"]) <= at:
            f["deceased_children"] += 1
        else:
            f["living_children"] += 1
        if 1 <= int(c.get("disability") or 0) <= 3:
            f["disabled_children"] += 1
        ages.append(years(ymd(k["birth_date"]), at))
    f["youngest_child_age"] = min(ages) if ages else -1
    f["oldest_child_age"] = max(ages) if ages else -1
    return f


OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
       "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def amount(s, f):
    if not all(OPS[o](f[n], v) for n, o, v in s["when"]):
        return 0
    for t in s["tiers"]:
        if all(OPS[o](f[n], v) for n, o, v in t["when"]):
            return t["amount_fen"]
    return 0


def entitled(schemes, d, lo, hi):
    out = []
    persons = d["persons"]
    mothers = [p for p in persons if not p["male"] and (any(b["mother"] == p["id"] for b in d["births"]) or p.get("gave_up"))]
    for s in schemes["schemes"]:
        start = month_start(s["start"], False)
        end = month_start(s["end"], True) if s.get("end") else 99999999
        for m in mothers:
            father = None
            if s["recipient"] == "each_parent" and m.get("household"):
                father = next((p for p in persons if p["male"] and p.get("married") and p.get("household") == m["household"]), None)
            recs = [m] + ([father] if father else [])
            alive = lambda p, on: not p.get("deceased") or ymd(p["deceased"]) > on
            if s["period"] == "once":
                if s["event"] == "first_birth":
                    events = [ymd(b["birth_date"]) for b in d["births"] if b["mother"] == m["id"] and b["order"] == 1]
                else:
                    events = [ymd(m["gave_up"])] if m.get("gave_up") else []
                for ev in events:
                    if lo <= ev <= hi and start <= ev <= end and alive(m, ev):
                        a = amount(s, facts(d, m, m, ev))
                        if a:
                            out.append((m["id"], s["code"], "%04d-%02d" % (ev // 10000, ev // 100 % 100), a))
                continue
            periods = []
            for y in range(lo // 10000, hi // 10000 + 1):
                if s["period"] == "year":
                    periods.append(("%04d" % y, y * 10000 + 101, y * 10000 + 1231))
                else:
                    for mo in range(1, 13):
                        periods.append(("%04d-%02d" % (y, mo), y * 10000 + mo * 100 + 1,
                                        y * 10000 + mo * 100 + calendar.monthrange(y, mo)[1]))
            for name, first, last in periods:
                if not (lo <= last <= hi) or last < start or first > end:
                    continue
                for r in recs:
                    if not alive(r, first):
                        continue
                    a = amount(s, facts(d, m, r, last))
                    if a:
                        out.append((r["id"], s["code"], name, a))
    return sorted(out)


def main():
    if sys.argv[1] == "generate":
        generate(sys.argv[2])
        return
    schemes = json.load(open(sys.argv[2]))
    d = json.load(open(sys.argv[3]))
    if sys.argv[1] == "entitled":
        for e in entitled(schemes, d, int(sys.argv[4]), int(sys.argv[5])):
            print(*e)
        return
    paid = {}
    for p in json.load(open(sys.argv[4])):
        k = (p["person_id"], p["scheme"], p["period"])
        paid[k] = paid.get(k, 0) + p["amount_fen"]
    mother_of = {}
    for b in d["births"]:
        mother_of[b["mother"]] = b["mother"]
    fam = {}
    byid = {p["id"]: p for p in d["persons"]}
    for m in byid.values():
        if not m["male"]:
            mother_of[m["id"]] = m["id"]
    for p in byid.values():   # a father's family is his wife's
        if p["male"] and p.get("married"):
            w = next((q for q in byid.values() if not q["male"] and q.get("married") and q.get("household") == p.get("household")), None)
            if w:
                mother_of[p["id"]] = w["id"]
    for pid, code, period, a in entitled(schemes, d, int(sys.argv[5]), int(sys.argv[6])):
        owed = a - paid.get((pid, code, period), 0)
        if owed > 0:
            f = mother_of[pid]
            fam[f] = fam.get(f, 0) + owed
    for f in sorted(fam):
        print(f, fam[f])


if __name__ == "__main__":
    main()
