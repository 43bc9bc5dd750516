"""Every form and variant at three sizes of data, for the layout checker and the golden images.

* ``typical``: ``tests.samples_data`` as issued (no handwriting yet);
* ``minimal``: the same with every optional value left out that validation lets go;
* ``longest``: every text value as long as the validators allow (``Field.max_length``; 20
  characters for a name), table rows included, where validation still accepts the value.

``sized_samples()`` yields (label, size, form, variant, data) with label as in ``all_samples``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from forms.errors import ValidationFailed
from forms.registry import get_spec
from forms.spec import Filled, Kind
from tests.samples_data import all_samples

SIZES = ("minimal", "typical", "longest")
_FILLER = "控辍保学联控联保工作责任落实到人确保适龄儿童少年依法接受义务教育"
_NAME = "阿卜杜热合曼·买买提·艾山江吐尔洪"  # 17 characters; padded to 20


def _filler(n: int) -> str:
    return (_FILLER * (n // len(_FILLER) + 1))[:n]


def _long_name() -> str:
    return (_NAME + "阿依古丽")[:20]


def _valid(spec, variant, data) -> bool:
    try:
        spec.validate(data, variant)
    except ValidationFailed:
        return False
    return True


def _longest(spec, variant, data: dict) -> dict:
    out = copy.deepcopy(data)
    for f in spec.fields:
        if f.filled == Filled.HAND:
            continue
        if f.kind == Kind.TABLE:
            rows = out.get(f.name) or []
            for i in range(len(rows)):
                for c in f.columns:
                    if c.kind == Kind.TEXT and c.max_length and c.filled != Filled.SYSTEM:
                        trial = copy.deepcopy(out)
                        trial[f.name][i][c.name] = _filler(c.max_length)
                        if _valid(spec, variant, trial):
                            out = trial
            continue
        if f.kind == Kind.TEXT and f.max_length and f.name != spec.number_field and not f.series:
            value = _filler(f.max_length)
        elif f.kind == Kind.NAME and not is_missing(out.get(f.name)):
            value = _long_name()
        else:
            continue
        trial = {**out, f.name: value}
        if _valid(spec, variant, trial):
            out = trial
    return out


def is_missing(value) -> bool:
    return value is None or value == "" or value == []


def _minimal(spec, variant, data: dict) -> dict:
    out = copy.deepcopy(data)
    for f in spec.fields:
        if f.required or f.name not in out or f.filled == Filled.SYSTEM:
            continue
        trial = {k: v for k, v in out.items() if k != f.name}
        if _valid(spec, variant, trial):
            out = trial
    return out


def sized_samples() -> Iterator[tuple[str, str, str, str | None, dict]]:
    """(label, size, form, variant, data) for every sample of ``all_samples`` at every size."""
    for form, vcode, label, data in all_samples(hand=False):
        spec = get_spec(form)
        variant = spec.variant(vcode) if spec.variants else None
        if label == "handover-45":  # the long class: only as it is (its size is its row count)
            yield label, "typical", form, vcode, data
            continue
        yield label, "minimal", form, vcode, _minimal(spec, variant, data)
        yield label, "typical", form, vcode, data
        yield label, "longest", form, vcode, _longest(spec, variant, data)
