"""The README's curl tour is meant to be pasted as it is: every jq filter in it compiles under the
jq that scripts/setup.sh installs (Debian's jq 1.6, where ``label`` is a keyword and cannot be an
object shorthand), and the ids it uses are looked up, never typed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
JQ = re.compile(r"\bjq((?:\s+(?:-[a-zA-Z]+|--argjson\s+\w+\s+\S+|--arg\s+\w+\s+\S+))*)\s+'([^']*)'")


def _tour() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## A short tour with curl")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block, "the tour's shell block"
    return block.group(1)


def test_every_jq_filter_of_the_tour_compiles():
    jq = shutil.which("jq")
    assert jq, "jq is installed by scripts/setup.sh"
    filters = JQ.findall(_tour())
    assert len(filters) >= 20, len(filters)
    for opts, flt in filters:
        names = re.findall(r"--arg(?:json)?\s+(\w+)", opts)
        args = [a for n in names for a in ("--argjson", n, "0")]
        r = subprocess.run([jq, "-n", *args, f"empty | ({flt})"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, f"jq {flt!r}: {r.stderr.strip()}"


def test_the_tour_types_no_id():
    """Ids come from the answers (jq) or from org names, never typed in a path or a body."""
    tour = _tour()
    assert not re.search(r"\$B/\w+/\d+", tour)
    assert not re.search(r'"(?:issuer_id|org_id|case_id|parent_org_id)":\s*\d', tour)
