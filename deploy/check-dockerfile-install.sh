#!/usr/bin/env bash
# Replay the Dockerfile's install steps without a Docker engine.
#
# Copies exactly what the builder stage COPYs into a temporary build context, creates a clean venv
# (as `python -m venv "$VIRTUAL_ENV"` does in the image), runs the Dockerfile's pip commands
# verbatim, then checks the result from outside the source tree: `import gateway` and
# `dlr-gateway --help` from that venv. Needs PyPI, so CI's unit tests do not run it;
# tests/test_deploy.py checks that the pip lines below equal the Dockerfile's RUN lines.
#
# Usage: deploy/check-dockerfile-install.sh
#   PYTHON=python3.11 (default)  the interpreter for the venv; the image has Python 3.11
#   KEEP=1                       keep the temporary directory
#   ALLOW_MISSING_README=1       while README.md is still being written, put an empty one in the
#                                temporary context (docker build itself would fail at COPY)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3.11}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "warning: $python not found, using python3 (the image uses Python 3.11)" >&2
    python=python3
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/dlr-gateway-image.XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then
    trap 'rm -rf "$work"' EXIT
fi

# The build context: the Dockerfile's COPY sources, nothing else (a missing one fails the
# docker build too).
echo "==> build context in $work/src"
mkdir -p "$work/src"
for source in pyproject.toml README.md gateway; do
    if [[ -e "$repo/$source" ]]; then
        continue
    elif [[ "$source" == README.md && "${ALLOW_MISSING_README:-0}" == 1 ]]; then
        echo "warning: README.md is missing; using an empty one (docker build would fail at COPY)" >&2
        : >"$work/src/README.md"
    else
        echo "error: $source is missing; the Dockerfile COPYs it, so docker build would fail" >&2
        exit 1
    fi
done
cp "$repo/pyproject.toml" "$work/src/"
if [[ -e "$repo/README.md" ]]; then cp "$repo/README.md" "$work/src/"; fi
(cd "$repo" && tar --exclude='__pycache__' --exclude='*.py[cod]' -cf - gateway) | tar -xf - -C "$work/src"

# The builder stage's environment.
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export VIRTUAL_ENV="$work/venv" WHEELS="$work/wheels"
echo "==> $("$python" --version) -m venv $VIRTUAL_ENV"
"$python" -m venv "$VIRTUAL_ENV"
export PATH="$VIRTUAL_ENV/bin:$PATH"
cd "$work/src"

echo "==> the Dockerfile's pip steps"
pip wheel --no-cache-dir --wheel-dir "$WHEELS" .
pip install --no-cache-dir --no-index --find-links "$WHEELS" dlr-gateway

echo "==> wheels built"
ls "$WHEELS"
echo "==> wheels that are platform-specific and not manylinux (built from source here; the slim builder has no compiler):"
ls "$WHEELS" | grep -v -e '-none-any\.whl$' -e 'manylinux' -e 'musllinux' || echo "(none)"

# Check from outside the build context, so `gateway` comes from the venv, not the cwd.
cd "$work"
echo "==> python -c 'import gateway'"
python -c 'import gateway, sys; print("gateway", gateway.__version__, "from", gateway.__file__); sys.exit(0)'
echo "==> dlr-gateway --help"
if ! dlr-gateway --help; then
    if [[ ! -e "$repo/gateway/cli.py" ]]; then
        echo "error: dlr-gateway --help failed: gateway/cli.py (the console script's module) does not exist yet" >&2
    else
        echo "error: dlr-gateway --help failed" >&2
    fi
    exit 1
fi
echo "==> OK: the image's install steps work"
