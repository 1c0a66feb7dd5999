# Shared by scripts/run and scripts/test: a virtualenv with the pinned requirements.
# Installs only when requirements*.txt changed since the last install.
venv_ensure() {
  local python=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    echo "mlapp: creating the virtualenv in .venv"
    "$python" -m venv .venv
  fi
  local stamp=.venv/.requirements.sha256
  local want
  want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-64)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "mlapp: installing requirements (about a minute the first time)"
    # pip's notes about unreachable local indexes are noise; real errors still show and fail.
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt 2> >(grep -v "^WARNING: Location" >&2)
    echo "$want" > "$stamp"
  fi
}
