"""Calibrate the boxed-number decoding (parsers/scan/boxes.py, ``decode_boxes``) on DEV data.

Runs the scan bench's character-box run with the dev writers (``bench.scan --hands dev``: MNIST
validation digits the digit readers never trained on, ``bench.hands.digit_bank``), records each
boxed date's evidence (the readers' guesses, which boxes run into an edge, each box read alone by
OCR, both engines' line readings), then:

* counts how often the readers' reading of a box is right, on faxes apart (``READER_SURE_RIGHT``,
  ``READER_RIGHT_BY_P`` and their ``_FAX``: Beta(1, 1)-smoothed, non-decreasing in the network's
  probability);
* grid-searches ``OCR_ALONE_RIGHT`` and ``LINE_EDIT_COST`` for the highest log-probability of the
  written dates;
* prints, per acceptance posterior, how many dates would be taken and how many of them wrong.

Never run it on the held-out writers. Usage (a few minutes per seed)::

    python scripts/calibrate_boxes.py [--seeds 0,1] [--boxes 48] [--save records.pkl | --load a.pkl,b.pkl]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from parsers.images import is_fax  # noqa: E402
from parsers.scan import boxes as B  # noqa: E402
from parsers.scan import digits as dm  # noqa: E402
from parsers.scan.handwriting import LATE_AFTER_ISSUE_DAYS, digits_only  # noqa: E402


def capture(seeds: list[int], n_boxes: int) -> list[dict]:
    """The evidence of every boxed date the dev bench writes (digits unseen by the readers)."""
    import bench.scan as bs
    import parsers.scan.read as rd
    from bench import hands as hd
    from parsers.ocr import OcrFailed
    from parsers.scan.readings import recognize

    written: dict[str, str] = {}
    fill = hd.fill

    def remember(*a, **k):
        written.clear()
        written.update(k.get("boxed") or {})
        return fill(*a, **k)

    hd.fill = remember
    recs: list[dict] = []
    read_boxed = rd.read_boxed

    def record(path, f, got, bw, singles, fallback, ctx, common):
        second = None
        if fallback is not None and bw.line is not None:
            try:
                second = recognize(fallback, bw.line).text
            except OcrFailed:
                second = None
        if f.kind.value == "date" and path in written:
            written_at = [i + 1 for i, on in enumerate(bw.inked) if on]
            recs.append({"field": f, "inked": bw.inked, "crops": bw.digits, "singles": [t.text for t in singles],
                         "on_edge": [written_at.index(b) for b in bw.on_edge if b in written_at],
                         "fax": is_fax(bw.dpi),
                         "lines": [got.text] + ([second] if second is not None else []),
                         "issued_on": ctx.issued_on, "today": ctx.today, "written": written[path]})
        return read_boxed(path, f, got, bw, singles, fallback, ctx, common)

    rd.read_boxed = record
    for seed in seeds:
        bs.main(["--quick", "--boxes-only", "--boxes", str(n_boxes), "--no-baseline", "--hands", "dev",
                 "--only", "dpi200,phone,fax120", "--seed-from", str(seed)])
    return recs


def prepare(recs: list[dict]) -> list[dict]:
    """Per record: the readers' guesses (from the crops, with the readers installed now), the
    candidate dates' digits, their prior class (0 early, 1 late, 2 outside) and edit distances."""
    out = []
    for r in recs:
        inked = r["inked"]
        if not r["crops"] or len(r["crops"]) != sum(inked):
            continue
        w = r["written"]
        want = "".join(c for c, on in zip(w.ljust(len(inked)), inked, strict=False) if on and c != " ")
        start, end = r["issued_on"], r["today"]
        lines = [digits_only(t.translate(B._BOX_LINE_FIX)) for t in r["lines"]]
        cands, kinds = [], []
        day, hi = dt.date(start.year - B.OUTSIDE_YEARS, 1, 1), dt.date(end.year + B.OUTSIDE_YEARS, 12, 31)
        while day <= hi:
            d = B._date_boxes(day, inked)
            if d is not None:
                cands.append(d)
                kinds.append(2 if not start <= day <= end else int((day - start).days >= LATE_AFTER_ISSUE_DAYS))
            day += dt.timedelta(days=1)
        if not cands:
            out.append({"want": want, "cands": None, "fax": r.get("fax", False)})
            continue
        out.append({"want": want, "guesses": dm.classify_many(r["crops"]), "on_edge": r.get("on_edge", []),
                    "fax": r.get("fax", False),
                    "alone": [B.single_digit(t) for t in r["singles"]], "kinds": np.array(kinds),
                    "digits": np.array([[int(c) for c in d] for d in cands]),
                    "edits": np.array([sum(B._edits(line, d) for line in lines) for d in cands]),
                    "truth": cands.index(want) if want in cands else None})
    return out


def reader_table(prep: list[dict], fax: bool) -> tuple[float, tuple[float, ...]]:
    """How often the readers' reading is right, sure and by the network's probability
    (``B.READER_P_EDGES``), on fax scans or on the others."""
    bins = len(B.READER_P_EDGES) + 1
    sure, by_p, few, dropped = [0, 0], [[0, 0] for _ in range(bins)], [0, 0], [0, 0]
    confident = B.READER_P_EDGES.index(0.95) + 1  # the bins of the network's probability 0.95 or more
    for p in prep:
        if "guesses" not in p or len(p["want"]) != len(p["guesses"]) or p["fax"] != fax:
            continue
        for k, (g, c) in enumerate(zip(p["guesses"], p["want"], strict=True)):
            if g is None:
                continue
            right = g.digit == int(c)
            row = sure if g.sure and k not in p["on_edge"] else by_p[B.reader_bin(g)]
            row[0] += 1
            row[1] += right
            if g.broken:
                dropped[0] += 1
                dropped[1] += right
            elif not g.sure and g.votes < dm.SURE_VOTES and k not in p["on_edge"] and B.reader_bin(g) >= confident:
                few[0] += 1  # what the references do not back, however sure the network (p 0.95 or more)
                few[1] += right
    rates = [(k + 1) / (n + 2) for n, k in by_p]
    for v in range(1, bins):
        rates[v] = max(rates[v], rates[v - 1])
    print(f"readers{' (fax)' if fax else ''}: sure {sure[1]}/{sure[0]} right; not sure by probability {by_p}; "
          f"ink dropped {dropped[1]}/{dropped[0]}; few votes, network 0.95 or more {few[1]}/{few[0]} "
          f"(READER_FEW_VOTES_RIGHT{'_FAX' if fax else ''} = {(few[1] + 1) / (few[0] + 2):.3f})")
    return (sure[1] + 1) / (sure[0] + 2), tuple(round(x, 3) for x in rates)


def posteriors(prep: list[dict], alone_right: float, edit_cost: float) -> list[tuple[float, bool | None, float]]:
    """Per record: (log-posterior of the written date, best is it, posterior of the best)."""
    B.OCR_ALONE_RIGHT = alone_right
    res = []
    for p in prep:
        if "guesses" not in p:
            res.append((-20.0, None, 0.0))
            continue
        like = B.box_likelihoods(p["guesses"], p["alone"], p["on_edge"], fax=p["fax"])
        like = np.log(np.maximum(np.array(like), 1e-12))
        s = like[np.arange(p["digits"].shape[1])[None, :], p["digits"]].sum(1) - edit_cost * p["edits"]
        kinds = p["kinds"]
        mass = (kinds == 0).sum() + B.LATE_DAY_PRIOR * (kinds == 1).sum()
        s = s + np.where(kinds == 0, 0.0, np.where(kinds == 1, math.log(B.LATE_DAY_PRIOR),
                                                   math.log(B.OUTSIDE_PRIOR * mass / max((kinds == 2).sum(), 1))))
        total = np.logaddexp.reduce(s)
        best = int(s.argmax())
        t = p["truth"]
        res.append((float(s[t] - total) if t is not None else -20.0, best == t, float(math.exp(s[best] - total))))
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--boxes", type=int, default=48)
    ap.add_argument("--save")
    ap.add_argument("--load")
    args = ap.parse_args(argv)
    if args.load:  # one or several files (comma-separated), as --save wrote them
        recs = [r for f in args.load.split(",") for r in pickle.loads(Path(f).read_bytes())]
    else:
        recs = capture([int(s) for s in args.seeds.split(",")], args.boxes)
        if args.save:
            Path(args.save).write_bytes(pickle.dumps(recs))
    prep = prepare(recs)
    B.READER_SURE_RIGHT, B.READER_RIGHT_BY_P = reader_table(prep, False)
    B.READER_SURE_RIGHT_FAX, B.READER_RIGHT_BY_P_FAX = reader_table(prep, True)
    print(f"READER_SURE_RIGHT = {B.READER_SURE_RIGHT:.4f}\nREADER_RIGHT_BY_P = {B.READER_RIGHT_BY_P}")
    print(f"READER_SURE_RIGHT_FAX = {B.READER_SURE_RIGHT_FAX:.4f}\nREADER_RIGHT_BY_P_FAX = {B.READER_RIGHT_BY_P_FAX}")
    best = None
    for ra, lam in itertools.product((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)):
        nll = -sum(x[0] for x in posteriors(prep, ra, lam))
        if best is None or nll < best[0]:
            best = (nll, ra, lam)
    nll, ra, lam = best
    res = posteriors(prep, ra, lam)
    print(f"OCR_ALONE_RIGHT = {ra}\nLINE_EDIT_COST = {lam}  (-log-likelihood {nll:.1f}; best date right "
          f"{sum(1 for x in res if x[1])} of {len(res)})")
    for fax in (False, True):
        group = [r for r, p in zip(res, prep, strict=True) if p.get("fax", False) == fax]
        print("fax scans:" if fax else "other scans:")
        for thr in (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998):
            taken = [ok for _t, ok, p in group if p >= thr]
            print(f"  accept at {thr}: {sum(1 for ok in taken if ok)} right, "
                  f"{sum(1 for ok in taken if ok is False)} wrong of {len(group)}")
        wrong = sorted(p for _t, ok, p in group if ok is False)
        print("  most likely wrong dates' posteriors:", [round(p, 4) for p in wrong[-5:]])


if __name__ == "__main__":
    main()
