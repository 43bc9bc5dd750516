"""Marks on a form: tick boxes, signatures, fingerprints and red seals (presence only).

Every function takes a crop cut out by ``align.Aligned.crop`` (RGB, default 200 dpi) and returns
a ``Mark``: a state, a score (the measured quantity) and a confidence in [0, 1]. The rule from
DOMAIN.md section 5.6 applies: presence only, never identity, and anything unclear is
``"ambiguous"`` so a person decides; nothing here guesses.

* tick boxes: ink ratio inside the printed box with the border excluded, with an ambiguity band
  between "empty" and "ticked";
* seals: red (HSV) area with a roughly round or square outline of seal size; a scan without
  colour cannot show a seal and says so;
* fingerprints: a compact red blob of fingertip size;
* signatures: ink beyond the printed content: printed lines are removed, and either a blank
  reference crop of the template is subtracted or only components too large for printed text
  count.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from parsers.images import ink_mask, to_gray

TICKED, EMPTY, AMBIGUOUS = "ticked", "empty", "ambiguous"
PRESENT, ABSENT = "present", "absent"

# Ink ratio inside a tick box: at most EMPTY_MAX is empty, at least TICKED_MIN is ticked.
EMPTY_MAX = 0.03
TICKED_MIN = 0.07


@dataclass(frozen=True)
class Mark:
    """Outcome for one zone. ``state``: "ticked"/"empty"/"ambiguous" for tick boxes,
    "present"/"absent"/"ambiguous" otherwise. ``score``: the measured quantity (ink or red
    ratio). ``confidence``: 0..1, how far the score is from the decision band. ``reason``: set
    when the answer is ambiguous, for the reviewer."""

    state: str
    score: float
    confidence: float
    reason: str = ""

    def __iter__(self):
        # Allows ``state, score = tick_state(crop)``.
        return iter((self.state, self.score))

    @property
    def needs_review(self) -> bool:
        return self.state == AMBIGUOUS


def _confidence(score: float, low: float, high: float) -> float:
    """1 far outside the band [low, high], falling to 0.5 at its edges and 0 in its middle."""
    if score <= low:
        return float(min(1.0, 0.5 + 0.5 * (low - score) / max(low, 1e-9)))
    if score >= high:
        return float(min(1.0, 0.5 + 0.5 * (score - high) / max(high, 1e-9)))
    mid = (low + high) / 2
    return float(0.5 * abs(score - mid) / ((high - low) / 2))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of consecutive True runs."""
    runs, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    return runs


def _box_interior(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inner edges (x0, y0, x1, y1) of the printed square, from rows/columns that are mostly ink.

    A crop often catches more than the box: the upright stroke of the next character (随 after
    □), a table rule, a straight pen stroke inside. Of the candidate edge pairs (one run on each
    side of the centre) the pair that makes the interior most nearly square is the printed box;
    among equally square ones, the larger."""
    h, w = ink.shape
    xs = _edge_pairs(_runs(ink.mean(axis=0) > 0.45), w)
    ys = _edge_pairs(_runs(ink.mean(axis=1) > 0.45), h)
    if not xs or not ys:
        return None
    (x0, x1), (y0, y1) = min(((x, y) for x in xs for y in ys),
                             key=lambda p: (abs((p[0][1] - p[0][0]) - (p[1][1] - p[1][0])),
                                            -(p[0][1] - p[0][0]) - (p[1][1] - p[1][0])))
    return x0, y0, x1, y1


def _edge_pairs(runs: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """(inner edge of a run before the centre, inner edge of a run after it), wide enough."""
    mid = size / 2
    before = [r for r in runs if (r[0] + r[1]) / 2 < mid]
    after = [r for r in runs if (r[0] + r[1]) / 2 > mid]
    return [(a[1], b[0]) for a in before for b in after if b[0] - a[1] >= 0.3 * size]


def tick_state(crop: np.ndarray, *, empty_max: float = EMPTY_MAX, ticked_min: float = TICKED_MIN) -> Mark:
    """Is the tick box in ``crop`` (the box plus a little margin) ticked, empty or unclear?

    The score is the ink ratio inside the box, border excluded, with a further 12 % inset so a
    slightly misaligned or blurred border does not count as a tick."""
    gray = to_gray(crop)
    ink = ink_mask(gray, contrast=0.7)
    h, w = ink.shape
    inner = _box_interior(ink)
    reason = ""
    if inner is None:
        # No printed square found (faint print, a hand-drawn box): read the centre only.
        inner = (int(0.25 * w), int(0.25 * h), int(0.75 * w), int(0.75 * h))
        reason = "未找到勾选框边线，只量了框中央"
    x0, y0, x1, y1 = inner
    mx, my = int(round(0.12 * (x1 - x0))), int(round(0.12 * (y1 - y0)))
    region = ink[y0 + my:y1 - my, x0 + mx:x1 - mx]
    if region.size == 0:
        return Mark(AMBIGUOUS, 0.0, 0.0, "勾选框太小，无法判断")
    score = float(region.mean())
    conf = _confidence(score, empty_max, ticked_min)
    if score <= empty_max:
        return Mark(EMPTY, score, conf * (0.8 if reason else 1.0), reason)
    if score >= ticked_min:
        return Mark(TICKED, score, conf * (0.8 if reason else 1.0), reason)
    return Mark(AMBIGUOUS, score, conf, reason or "框内笔迹浅或只勾了一部分")


def paper_colour(image: np.ndarray) -> np.ndarray:
    """The paper's own colour (RGB, float): the brightest common colour of the image, taken per
    channel at the 90th percentile of a sample. Yellowish, grey and recycled paper are not white,
    and a seal's red must be judged against the paper it is on."""
    if image.ndim == 2:
        return np.full(3, float(np.percentile(image, 90)), np.float32)
    step = max(1, int(max(image.shape[:2]) // 400))
    sample = image[::step, ::step].reshape(-1, image.shape[2])[:, :3]
    return np.maximum(np.percentile(sample, 90, axis=0).astype(np.float32), 40.0)


def white_balanced(crop: np.ndarray, paper: np.ndarray | None = None) -> np.ndarray:
    """``crop`` with its paper made white (each channel divided by the paper's)."""
    if crop.ndim == 2:
        return crop
    paper = paper_colour(crop) if paper is None else paper
    out = crop[..., :3].astype(np.float32) * (255.0 / paper)
    return np.clip(out, 0, 255).astype(np.uint8)


def _red_mask(crop: np.ndarray) -> np.ndarray:
    # judged on the crop with its paper made white: on yellow paper every pixel leans red
    hsv = cv2.cvtColor(white_balanced(crop), cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    # OpenCV hue is 0..179; red wraps around 0. Seal ink is saturated, and not too dark.
    return ((hue <= 10) | (hue >= 160)) & (sat >= 80) & (val >= 70)


def without_red(crop: np.ndarray) -> np.ndarray:
    """``crop`` with seal-red pixels made paper-white: black print under a translucent seal stays
    dark (and so stays), the seal's own ink goes."""
    out = crop.copy()
    red = _red_mask(crop) & (to_gray(crop) >= 70)
    out[red] = paper_colour(crop).astype(np.uint8)
    return out


def red_extent_mm(crop: np.ndarray, dpi: float) -> float:
    """Diameter (mm) of the red impression in ``crop`` (its pieces within a seal's size joined)."""
    return _red_blob(crop, dpi, reach_mm=SEAL_MAX_MM)[1]


def is_colour(image: np.ndarray) -> bool:
    """Does the scan carry colour at all? Decide on the whole page (a seal zone without a seal is
    colourless even on a colour scan) and pass the answer to ``seal_present``."""
    if image.ndim == 2 or image.shape[2] == 1:
        return False
    step = max(1, int(max(image.shape[:2]) // 800))  # a sample is enough
    # Per-pixel spread between the channels, on uint8 planes with OpenCV: numpy's max/min over the
    # three-long channel axis took ~0.06 s a page, a seventh of reading it.
    r, g, b = cv2.split(np.ascontiguousarray(image[::step, ::step, :3]))
    spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    # A grey or bilevel scan has no spread between channels at all; a colour scan of a black
    # form still shows coloured ink or colour fringes on some pixels.
    return np.count_nonzero(spread >= 20) / spread.size >= 0.0002


# The largest official seal (公章 42 mm, some 45 mm across): how far apart the pieces of one seal lie.
SEAL_MAX_MM = 45.0


def _red_blob(crop: np.ndarray, dpi: float, reach_mm: float = 0.0) -> tuple[float, float, float, float]:
    """(red ratio, blob diameter in mm, fill of its enclosing circle, aspect ratio) of the biggest
    red blob; with ``reach_mm``, together with the other red pieces whose centres lie that close
    to it (a seal cut by the edge of its cell falls apart into arcs, star and characters)."""
    red = _red_mask(crop).astype(np.uint8)
    ratio = float(red.mean())
    if ratio == 0:
        return 0.0, 0.0, 0.0, 1.0
    # Join the ring, star and characters of a seal into one blob.
    k = max(3, int(round(1.5 * dpi / 25.4)))
    joined = cv2.morphologyEx(red, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    n, labels, stats, centres = cv2.connectedComponentsWithStats(joined)
    if n <= 1:
        return ratio, 0.0, 0.0, 1.0
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = [biggest]
    if reach_mm > 0:
        reach = reach_mm * dpi / 25.4
        keep += [i for i in range(1, n) if i != biggest and stats[i, cv2.CC_STAT_AREA] >= k * k
                 and float(np.hypot(*(centres[i] - centres[biggest]))) <= reach]
    member = np.isin(labels, keep)
    ys, xs = np.nonzero(member)
    pts = np.stack([xs, ys], axis=1).astype(np.float32)
    (_, _), radius = cv2.minEnclosingCircle(pts)
    w, h = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    inside = float(red[member].sum())
    fill = inside / max(np.pi * radius * radius, 1.0)
    return ratio, 2 * radius * 25.4 / dpi, fill, float(max(w, h) / max(min(w, h), 1))


def seal_present(crop: np.ndarray, *, dpi: float = 200.0, colour: bool | None = None,
                 min_diameter_mm: float = 15.0) -> Mark:
    """Is there a red seal in the zone? Presence only: the seal's text is never read.

    ``dpi`` is the crop resolution (``Aligned.dpi``). ``colour``: whether the page is a colour
    scan (``is_colour(page)``); when None it is judged from the crop alone. On a colourless scan
    the answer is "ambiguous": a seal cannot be told from black ink."""
    if not (is_colour(crop) if colour is None else colour):
        return Mark(AMBIGUOUS, 0.0, 0.0, "黑白扫描件，无法凭颜色判断是否盖章")
    ratio, diameter, fill, aspect = _red_blob(crop, dpi, reach_mm=SEAL_MAX_MM)
    if ratio < 0.0005:
        return Mark(ABSENT, ratio, _confidence(ratio, 0.0005, 0.003))
    seal_like = min_diameter_mm <= diameter <= SEAL_MAX_MM * 1.4 and aspect <= 1.6 and fill >= 0.04
    if seal_like and ratio >= 0.003:
        return Mark(PRESENT, ratio, min(1.0, 0.6 + 0.4 * min(1.0, diameter / 35.0)))
    why = (f"红色印迹直径约{diameter:.0f}毫米，小于公章" if diameter < min_diameter_mm
           else "有红色笔迹，但不像公章的形状")
    return Mark(AMBIGUOUS, ratio, 0.3, why)


def fingerprint_present(crop: np.ndarray, *, dpi: float = 200.0, colour: bool | None = None) -> Mark:
    """Is there a red fingerprint (捺印) in the zone? A compact, fairly solid red blob of
    fingertip size (8-30 mm). Presence only; ``colour`` as for ``seal_present``."""
    if not (is_colour(crop) if colour is None else colour):
        return Mark(AMBIGUOUS, 0.0, 0.0, "黑白扫描件，无法凭颜色判断是否按指印")
    ratio, diameter, fill, aspect = _red_blob(crop, dpi)
    if ratio < 0.0005:
        return Mark(ABSENT, ratio, _confidence(ratio, 0.0005, 0.003))
    if 8.0 <= diameter <= 30.0 and fill >= 0.25 and aspect <= 2.2:
        return Mark(PRESENT, ratio, min(1.0, 0.5 + fill))
    return Mark(AMBIGUOUS, ratio, 0.3, f"红色印迹直径约{diameter:.0f}毫米，不像指印")


def remove_lines(ink: np.ndarray, *, tall: int | None = None) -> np.ndarray:
    """Drop long straight horizontal/vertical strokes: cell borders and printed underlines.
    ``tall``: the shortest upright stroke taken for a border (default a third of the height)."""
    h, w = ink.shape
    u8 = ink.astype(np.uint8)
    horiz = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((1, max(15, w // 3)), np.uint8))
    vert = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((tall or max(15, h // 3), 1), np.uint8))
    lines = cv2.dilate(horiz | vert, np.ones((3, 3), np.uint8))
    return ink & ~lines.astype(bool)


def signature_present(crop: np.ndarray, *, reference: np.ndarray | None = None, dpi: float = 200.0,
                      min_stroke_mm: float = 6.0) -> Mark:
    """Is the signature zone signed? Presence only: the signature is never read or compared.

    ``reference``: the same zone cropped from the blank template page (same size), whose ink is
    subtracted. Without it, printed text is told apart by size: only ink components spanning
    ``min_stroke_mm`` or more (a handwritten stroke, not a printed character) count. Red ink
    (seals, fingerprints) is left to the other checks."""
    gray = to_gray(crop)
    ink = ink_mask(gray, contrast=0.7)
    if crop.ndim == 3:
        ink &= ~_red_mask(crop)
    h, w = ink.shape
    edge = max(2, int(round(0.03 * min(h, w))))
    ink[:edge, :] = False
    ink[-edge:, :] = False
    ink[:, :edge] = False
    ink[:, -edge:] = False
    ink = remove_lines(ink)
    if reference is not None:
        if reference.shape[:2] != crop.shape[:2]:
            raise ValueError("reference crop must have the same size as the crop")
        printed = ink_mask(to_gray(reference), contrast=0.7).astype(np.uint8)
        k = max(3, int(round(0.8 * dpi / 25.4)))  # tolerate ~0.8 mm misregistration
        ink &= ~cv2.dilate(printed, np.ones((k, k), np.uint8)).astype(bool)
    total = float(ink.mean())
    # A thin pen line in a 150-dpi fax or a faint photo falls apart into short pieces: join them
    # across small gaps (~1.2 mm) before measuring stroke length.
    j = max(2, int(round(1.2 * dpi / 25.4)))
    joined = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((j, j), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined)
    min_px = min_stroke_mm * dpi / 25.4
    big = [i for i in range(1, n) if max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) >= min_px]
    # area of the joined strokes, not of the gaps closed between them
    big_ratio = min(total, float(sum(stats[i, cv2.CC_STAT_AREA] for i in big)) / ink.size)
    if reference is not None:
        # With the printed content subtracted, everything left is handwriting or dirt.
        score = total
        low, high = 0.0008, 0.003
    else:
        score = big_ratio
        low, high = 0.0005, 0.002
    if score >= high and (big or reference is not None and total >= high):
        return Mark(PRESENT, score, _confidence(score, low, high))
    # "Absent" is the answer no person looks at again: only for a zone with (next to) no ink at all.
    # Ink that does not add up to a signature (broken strokes, smudges) is for a person to judge.
    if score <= low and (reference is not None or total <= 2 * high):
        return Mark(ABSENT, score, _confidence(score, low, high))
    return Mark(AMBIGUOUS, score, _confidence(score, low, high) * 0.5,
                "签名处有少量笔迹，不足以认定已签名")
