# Shared set-up for scripts/test and scripts/demo (sourced): a virtualenv with PyHeart and its dev
# tools, the system tools the interoperability tests use, and Kafka's jars from Maven Central.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== pip install -e .[dev]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v storescu >/dev/null 2>&1 || need_apt+=(dcmtk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if command -v java >/dev/null 2>&1 && .venv/bin/pyheart kafka --help >/dev/null 2>&1; then
  echo "== fetching Kafka jars (cached)"
  .venv/bin/pyheart kafka fetch
  echo "== building the local HAPI FHIR server (cached)"
  .venv/bin/pyheart fhir-server fetch
fi
