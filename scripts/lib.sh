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
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
    echo "$want" > "$stamp"
  fi
}
