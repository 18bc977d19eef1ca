#!/usr/bin/env bash
# Mutation testing of the runtime's core modules with mutmut (a dev tool; not part of the
# default test command). mutmut names mutants by file path, and this repository's root is the
# package ``sleepstream``, so the run happens in a scratch copy laid out as
# <scratch>/sleepstream/... next to the mutmut config of this folder.
#
#   tests/mutation/run.sh                 # every module in config.toml
#   tests/mutation/run.sh 'sleepstream.engine.quality.*'   # mutant-name globs
#
# It mutates the committed tree ($MUTATION_REV, default HEAD), never the working tree.
# Scratch dir: $MUTATION_DIR (default: a fresh temporary directory). One worker, nice 10.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${MUTATION_DIR:-$(mktemp -d -t sleepstream-mutation.XXXXXX)}
mkdir -p "$work/sleepstream"
cd "$repo"
rm -rf "$work/sleepstream" && mkdir -p "$work/sleepstream"
git archive "${MUTATION_REV:-HEAD}" | tar -x -C "$work/sleepstream"  # committed code only
rm -f "$work/sleepstream/sleepstream"
cp "$repo/tests/mutation/config.toml" "$work/pyproject.toml"
cd "$work"
rm -rf mutants
mkdir mutants  # tests find the shared recordings next to the package, as in the checkout
if [ -d "$repo/../shared" ]; then ln -s "$(cd "$repo/../shared" && pwd)" mutants/shared; fi
export OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
nice -n 10 "$repo/.venv/bin/mutmut" run --max-children 1 "$@" || true
"$repo/.venv/bin/mutmut" results --all true > results.txt || true
"$repo/.venv/bin/python" "$repo/tests/mutation/score.py" results.txt
echo "scratch: $work (mutmut show <name> there shows a mutant's diff)"
