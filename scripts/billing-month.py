#!/usr/bin/env python3
"""Simulates a month of Aion billing against `aion dev` and checks that it adds up.

    scripts/billing-month.py [--aion target/debug/aion] [--out DIR]

Starts `aion dev` with a simulated clock (2026-10-31 12:00 UTC, no simulated nodes) and
plays everyone through the public API: an operator publishes prices and grid carbon
intensities, three organisations get grants (two commercial contracts, one allocation
through a GENCI-style call), this script plays a GPU node through the agent API (it
activates and tears down slices and reports their energy every 12 simulated hours),
leases come and go across the month, the clock runs to December, and the operator
finalises October and November.

Then it recomputes every invoice and statement, grant ledger, energy and CO2e figure
independently from the raw leases (their active and end times) and the usage it
reported, with exact fractions, and compares. It prints a summary, writes the JSON,
CSV and HTML exports to --out, and exits 1 on any mismatch. Only the standard library.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

START = datetime(2026, 10, 31, 12, 0, tzinfo=timezone.utc)
PRICE_CHANGE = datetime(2026, 11, 15, tzinfo=timezone.utc)
SLICES = {"1g.10gb": 1, "2g.20gb": 2, "3g.40gb": 3, "4g.40gb": 4, "7g.80gb": 7}
WATTS_PER_SLICE = 100  # what the simulated node draws per compute slice
STEP = timedelta(hours=12)
FAILURES = []


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def check(what, got, want):
    ok = got == want
    print(f"  {'ok ' if ok else 'BAD'} {what}: {got}" + ("" if ok else f" (expected {want})"))
    if not ok:
        FAILURES.append(what)


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, token, body=None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode()
        if status not in expect:
            raise SystemExit(f"{method} {path} answered {status}: {text}")
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(aion, data_dir):
    port = free_port()
    env = dict(os.environ, AION_LOG="warn")
    proc = subprocess.Popen(
        [aion, "dev", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--dev-nodes", "0", "--dev-clock-start", iso(START)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(data_dir, "server.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"aion dev exited with {proc.returncode}; see {data_dir}/server.log")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as res:
                if res.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    else:
        raise SystemExit("aion dev did not become ready")
    with open(os.path.join(data_dir, "admin-token")) as f:
        return proc, Api(base), f.read().strip()


class Node:
    """This script playing one 4-GPU node at site par-1 through the agent API."""

    def __init__(self, api, admin):
        self.api = api
        join = api.call("POST", "/v1/join-tokens", admin, {"site": "par-1", "labels": {}})
        gpus = [{"uuid": f"GPU-sim-{i}", "index": i, "model": "H100-80GB",
                 "memory_mib": 81559, "mig_enabled": True} for i in range(4)]
        reg = api.call("POST", "/v1/agent/register", join["secret"],
                       {"hostname": "sim-billing-1", "gpus": gpus})
        self.cred = reg["credential"]
        self.sequence = {}
        self.reported = []  # (lease, interval start, interval end, energy mJ)

    def renew(self):
        self.cred = self.api.call("POST", "/v1/agent/renew", self.cred)["credential"]

    def converge(self):
        """Creates what the desired state asks for and removes what it no longer does."""
        state = self.api.call("GET", "/v1/agent/desired-state", self.cred)
        instances = [
            {"gpu_uuid": i["gpu_uuid"], "profile_id": i["profile_id"], "start": i["start"],
             "mig_device_uuid": f"MIG-{i['gpu_uuid']}-{i['start']}"}
            for lease in state["leases"] if lease["state"] != "releasing"
            for i in lease["instances"]]
        self.api.call("POST", "/v1/agent/status", self.cred, {
            "instances": instances,
            "gpus": [{"uuid": f"GPU-sim-{i}", "health": "ok"} for i in range(4)]})
        return state

    def report_usage(self, leases, start, end):
        """Energy of every active lease over [start, end), apportioned by its slices."""
        records = []
        for lease in leases:
            lid, slices = lease["id"], SLICES[lease["profile"]] * lease["count"]
            a = max(start, parse_time(lease["active_at"]))
            b = min(end, parse_time(lease["ended_at"])) if lease.get("ended_at") else end
            secs = int((b - a).total_seconds())
            if secs <= 0:
                continue
            seq = self.sequence.get(lid, 0)
            self.sequence[lid] = seq + 1
            energy = slices * WATTS_PER_SLICE * secs * 1000  # W × s = J → mJ
            records.append({"lease_id": lid, "sequence": seq, "interval_start": iso(a),
                            "interval_end": iso(a + timedelta(seconds=secs)),
                            "allocated_seconds": secs * lease["count"],
                            "sm_utilisation_pct": 60.0, "memory_used_mib": 4096,
                            "energy_mj": energy})
            self.reported.append((lid, a, energy))
        if records:
            self.api.call("POST", "/v1/agent/usage", self.cred, {"records": records})


def setup(api, admin):
    """Prices, intensities, organisations, projects, grants and tokens."""
    api.call("POST", "/v1/carbon-intensities", admin,
             {"site": "par-1", "effective_from": iso(START - timedelta(days=1)),
              "grams_per_kwh": 56, "source": "RTE yearly average"})
    api.call("POST", "/v1/carbon-intensities", admin,
             {"site": "par-1", "effective_from": iso(PRICE_CHANGE), "grams_per_kwh": 40,
              "source": "RTE winter mix"})
    api.call("POST", "/v1/price-lists", admin, {
        "organization_kind": "startup", "name": "Startups from 15 November",
        "effective_from": iso(PRICE_CHANGE), "preemptible_discount_percent": "30",
        "entries": [{"gpu_model": "H100-80GB", "gpu_hour_price": "3.00"}]})
    orgs = {}
    for slug, kind, country in [("sim-startup", "startup", "FR"),
                                ("sim-industry", "industry", "DE"),
                                ("sim-lab", "academic", "FR"),
                                ("sim-genci", "allocator", "FR")]:
        org = api.call("POST", "/v1/organizations", admin,
                       {"slug": slug, "name": slug.replace("-", " ").title(), "kind": kind,
                        "country": country})
        orgs[slug] = org
    api.call("POST", "/v1/price-lists", admin, {
        "organization_id": orgs["sim-industry"]["id"], "name": "Contract 2026-117",
        "effective_from": iso(START), "preemptible_discount_percent": "20",
        "entries": [{"gpu_model": "H100-80GB", "gpu_hour_price": "3.50"}]})
    projects, tokens = {}, {}
    for slug, project in [("sim-startup", "vision"), ("sim-industry", "robotics"),
                          ("sim-lab", "climate")]:
        p = api.call("POST", f"/v1/organizations/{orgs[slug]['id']}/projects", admin,
                     {"slug": project, "name": project.title()})
        projects[slug] = p
        tokens[slug] = api.call("POST", f"/v1/projects/{p['id']}/tokens", admin,
                                {"name": "lead", "role": "lead"})["secret"]
    for slug in ["sim-startup", "sim-industry"]:
        api.call("POST", "/v1/grants", admin, {
            "project_id": projects[slug]["id"], "gpu_model": "H100-80GB", "gpu_hours": 5000,
            "valid_from": iso(START - timedelta(days=1)),
            "valid_until": iso(START + timedelta(days=90)), "reference": f"PO-{slug}"})
    allocator = api.call("POST", f"/v1/organizations/{orgs['sim-genci']['id']}/tokens", admin,
                         {"name": "committee", "role": "allocator"})["secret"]
    call = api.call("POST", "/v1/calls", allocator, {
        "organization_id": orgs["sim-genci"]["id"], "title": "GENCI simulated call",
        "description": "", "gpu_model": "H100-80GB", "pool_gpu_hours": 10000,
        "opens_at": iso(START - timedelta(days=2)), "closes_at": iso(START + timedelta(days=10)),
        "period_start": iso(START - timedelta(days=1)),
        "period_end": iso(START + timedelta(days=90))})
    api.call("POST", f"/v1/calls/{call['id']}/open", allocator, {})
    request = api.call("POST", f"/v1/calls/{call['id']}/requests", tokens["sim-lab"], {
        "project_id": projects["sim-lab"]["id"], "gpu_hours": 3000,
        "justification": "Climate ensemble runs"})
    api.call("POST", f"/v1/allocation-requests/{request['id']}/approve", allocator,
             {"gpu_hours": 2500})
    return orgs, projects, tokens


def lease(api, project, token, profile, days, count=1, preemptible=False):
    return api.call("POST", f"/v1/projects/{project['id']}/leases", token, {
        "profile": profile, "count": count, "preemptible": preemptible,
        "duration_s": int(days * 86400)})["id"]


def month_bounds(key):
    y, m = map(int, key.split("-"))
    start = datetime(y, m, 1, tzinfo=timezone.utc)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def price_at(api, admin, org, t):
    return api.call("GET", f"/v1/organizations/{org['id']}/price-list?at={iso(t)}", admin)


def expected_documents(api, admin, org, leases, grant_source, node, key):
    """Independent recomputation of an organisation's month from raw leases and usage."""
    start, end = month_bounds(key)
    lines = {}
    for l in leases:
        if not l.get("active_at"):
            continue
        active = parse_time(l["active_at"]).replace(microsecond=0)
        stop = parse_time(l["ended_at"]) if l.get("ended_at") else end
        if l.get("ends_at"):
            stop = min(stop, parse_time(l["ends_at"]))
        stop = stop.replace(microsecond=0)
        a, b = max(active, start), min(stop, end)
        if b <= a:
            continue
        # Cut at every price-list change inside the month (prices read through the API).
        cuts = sorted({a, b} | {t for t in [PRICE_CHANGE] if a < t < b})
        for p0, p1 in zip(cuts, cuts[1:]):
            pl = price_at(api, admin, org, p0)
            entry = next(e for e in pl["entries"] if e["gpu_model"] == l["gpu_model"])
            price = Fraction(Decimal(entry["gpu_hour_price"]))
            if l["preemptible"]:
                price *= 1 - Fraction(Decimal(pl["preemptible_discount_percent"])) / 100
            secs = int((p1 - p0).total_seconds())
            slices = SLICES[l["profile"]] * l["count"]
            # One line per funding, project, profile, preemptible and price, as invoices.
            k = (grant_source[l["grant_id"]], l["project_id"], l["profile"], l["preemptible"],
                 price)
            acc = lines.setdefault(k, [0, Fraction(0)])
            acc[0] += secs
            acc[1] += Fraction(secs * slices, 25200) * price
    docs = {}
    for (source, _project, _profile, _pre, _unit), (secs, amount) in lines.items():
        cents = Decimal(amount.numerator) / Decimal(amount.denominator)
        rounded = cents.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        d = docs.setdefault(source, {"net": Decimal(0), "seconds": 0})
        d["net"] += rounded
        d["seconds"] += secs
    for source, d in docs.items():
        if source == "contract" and org["country"] == "FR":
            d["vat"] = (d["net"] * Decimal(20) / 100).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        else:
            d["vat"] = Decimal(0)
    # Energy and CO2e of the month from what this node reported for the org's leases.
    ids = {l["id"]: l for l in leases}
    for lid, t, mj in node.reported:
        if lid in ids and start <= t < end:
            d = docs.setdefault(grant_source[ids[lid]["grant_id"]],
                                {"net": Decimal(0), "seconds": 0, "vat": Decimal(0)})
            grams = 40 if t >= PRICE_CHANGE else 56
            d["energy_mj"] = d.get("energy_mj", 0) + mj
            d["co2e_num"] = d.get("co2e_num", 0) + mj * grams
    return docs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aion", default="target/debug/aion")
    parser.add_argument("--out", default=None, help="folder for the exports")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="aion-billing-month-")
    out = args.out or os.path.join(data_dir, "exports")
    os.makedirs(out, exist_ok=True)
    proc, api, admin = start_server(args.aion, data_dir)
    try:
        run(api, admin, out)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if FAILURES:
        print(f"\n{len(FAILURES)} mismatch(es): {', '.join(FAILURES)}; server log in {data_dir}")
        return 1
    print(f"\nEverything adds up. Exports in {out}")
    if args.out:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def run(api, admin, out):
    print(f"simulated month from {iso(START)}")
    orgs, projects, tokens = setup(api, admin)
    node = Node(api, admin)
    now = START
    plan = {  # simulated day → leases to request (org, profile, days, count, preemptible)
        0: [("sim-startup", "3g.40gb", 30, 1, False), ("sim-industry", "7g.80gb", 9.5, 1, False),
            ("sim-lab", "4g.40gb", 30, 1, False)],
        5: [("sim-startup", "1g.10gb", 3, 2, True), ("sim-lab", "2g.20gb", 20, 1, False)],
        14: [("sim-industry", "3g.40gb", 25, 2, False)],
    }
    releases = {21: "sim-startup"}  # day → organisation whose first lease is released
    created = {slug: [] for slug in projects}
    day = 0.0
    while now < datetime(2026, 12, 1, 6, tzinfo=timezone.utc):
        if day in plan:
            for slug, profile, days, count, pre in plan.pop(day):
                created[slug].append(lease(api, projects[slug], tokens[slug], profile, days,
                                           count, pre))
            time.sleep(1.5)  # the scheduler places them
            node.converge()
        if day in releases:
            slug = releases.pop(day)
            api.call("DELETE", f"/v1/leases/{created[slug][0]}", tokens[slug])
            node.converge()
        api.call("POST", "/v1/dev/clock/advance", admin, {"seconds": int(STEP.total_seconds())})
        time.sleep(0.3)  # the scheduler expires what is due
        node.renew()
        state = node.converge()
        del state
        before, now = now, now + STEP
        live = []
        for slug in projects:
            for lid in created[slug]:
                l = api.call("GET", f"/v1/leases/{lid}", admin)
                if l.get("active_at"):
                    live.append(l)
        node.report_usage(live, before, now)
        day += 0.5

    grant_source = {}
    for slug, p in projects.items():
        for g in api.call("GET", f"/v1/projects/{p['id']}/grants", admin)["items"]:
            grant_source[g["id"]] = g["source"]
    for key in ["2026-10", "2026-11"]:
        print(f"\n== {key}")
        for slug in projects:
            org = orgs[slug]
            docs = api.call("POST", f"/v1/organizations/{org['id']}/invoices/{key}/finalize",
                            admin, {})["items"]
            leases = [l for l in api.call(
                "GET", f"/v1/projects/{projects[slug]['id']}/leases?limit=200", admin)["items"]]
            want = expected_documents(api, admin, org, leases, grant_source, node, key)
            for d in docs:
                source = "contract" if d["kind"] == "invoice" else "call"
                w = want.get(source, {"net": Decimal(0), "vat": Decimal(0)})
                label = f"{slug} {d['kind']} {d.get('number') or ''}".strip()
                check(f"{label} net", Decimal(d["net"]), w["net"])
                check(f"{label} vat", Decimal(d["vat"]), w["vat"])
                check(f"{label} total", Decimal(d["total"]), w["net"] + w["vat"])
                check(f"{label} lines sum", sum(Decimal(x["amount"]) for x in d["lines"]),
                      Decimal(d["net"]))
                check(f"{label} seconds", sum(x["seconds"] for x in d["lines"]), w["seconds"])
                wh = round(w.get("energy_mj", 0) / 3_600_000, 6)
                check(f"{label} energy Wh", round(d["energy_wh"], 6), wh)
                mg = (w.get("co2e_num", 0) * 2 + 3_600_000) // 7_200_000  # half up
                check(f"{label} CO2e g", round(d["co2e_g"], 3), mg / 1000)
                base = os.path.join(out, f"{key}-{slug}-{d['kind']}")
                with open(base + ".json", "w") as f:
                    json.dump(d, f, indent=2)
                for fmt in ["csv", "html"]:
                    body = api.call("GET", f"/v1/invoices/{d['id']}?format={fmt}", admin)
                    with open(f"{base}.{fmt}", "w") as f:
                        f.write(body)
            missing = set(want) - {"contract" if d["kind"] == "invoice" else "call" for d in docs}
            check(f"{slug} documents for every funding", sorted(missing), [])

    print("\n== grant ledgers")
    for slug, p in projects.items():
        leases = api.call("GET", f"/v1/projects/{p['id']}/leases?limit=200", admin)["items"]
        for g in api.call("GET", f"/v1/projects/{p['id']}/grants", admin)["items"]:
            entries, cursor = [], ""
            while True:
                page = api.call("GET", f"/v1/grants/{g['id']}/ledger?limit=200{cursor}", admin)
                entries += page["items"]
                if not page.get("next_cursor"):
                    break
                cursor = f"&cursor={page['next_cursor']}"
            check(f"{slug} ledger balance is the sum of entries",
                  sum(e["amount_slice_seconds"] for e in entries), g["balance_slice_seconds"])
            used = sum(l["charged_slice_seconds"] for l in leases if l["grant_id"] == g["id"])
            held = sum(l["held_slice_seconds"] for l in leases if l["grant_id"] == g["id"])
            check(f"{slug} grant used = charged time of ended leases", g["used_slice_seconds"],
                  used)
            check(f"{slug} grant held = holds of live leases", g["held_slice_seconds"], held)
            check(f"{slug} allocation = balance + held + used",
                  g["balance_slice_seconds"] + held + used, g["slice_seconds"])


if __name__ == "__main__":
    sys.exit(main())
