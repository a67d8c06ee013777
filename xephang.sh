#!/usr/bin/env bash
# xephang — the two commands of the README.
#   ./xephang.sh demo [options]   a whole virtual commune centre on this machine
#   ./xephang.sh test [pytest args]   install what is missing, lint, and run every test
# Both set everything up themselves on a fresh Debian / Raspberry Pi OS (root or sudo).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

say() { printf '\033[1m[xephang]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root (or sudo) to run: $*"; exit 1; fi
}

install_system_packages() {
  local missing=()
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
  command -v mosquitto_passwd >/dev/null || missing+=(mosquitto)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  command -v openssl >/dev/null || missing+=(openssl)  # xephang web cert: the LAN's HTTPS for the voice page
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ "${XEPHANG_WITH_BROWSER:-1}" = 1 ]; then
    # tests/webd: a real headless browser with its driver, and a QR reader for the printed ticket
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    command -v zbarimg >/dev/null || missing+=(zbar-tools)
    # tests/test_legibility_ocr.py and bench/legibility.py: the ticket and the board read by OCR
    command -v tesseract >/dev/null || missing+=(tesseract-ocr)
    [ -f /usr/share/tesseract-ocr/5/tessdata/vie.traineddata ] || missing+=(tesseract-ocr-vie)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_python() {
  python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    say "Python 3.11 or newer is needed (found $(python3 --version 2>&1))"; exit 1; }
  if [ ! -x .venv/bin/python ]; then
    say "creating the virtual environment .venv"
    python3 -m venv .venv
  fi
  local stamp=.venv/.xephang-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ xephang.sh -nt "$stamp" ]; then
    say "installing Python packages (pip install -e '.[dev,province]')"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e '.[dev,province]'
    touch "$stamp"
  fi
}

setup() {
  install_system_packages
  install_python
}

install_recogniser() {
  # the offline recogniser (viet-asr, in its own venv under ~/.cache/xephang; a dev and CI tool, not on the Pi):
  # tests/webd/test_voice_hearing.py hears a recorded pack with it. XEPHANG_WITH_ASR=0 skips it (those tests skip).
  [ "${XEPHANG_WITH_ASR:-1}" = 1 ] || return 0
  say "the offline recogniser for the voice tests (python -m xephang_voice.hearing install)"
  .venv/bin/python -m xephang_voice.hearing install ||
    say "warning: the recogniser could not be installed; the two tests that hear a pack will skip"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    setup
    exec .venv/bin/xephang demo "$@"
    ;;
  test)
    setup
    install_recogniser
    say "ruff"
    .venv/bin/ruff check .
    say "generated docs up to date"
    .venv/bin/xephang docs --check
    say "pytest"
    exec .venv/bin/python -m pytest -q "$@"
    ;;
  setup)
    setup
    ;;
  *)
    sed -n '2,5p' xephang.sh | sed 's/^# \{0,1\}//'  # cd'ed above: $0 may be relative to elsewhere
    exit 2
    ;;
esac
