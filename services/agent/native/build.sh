#!/bin/sh
# Builds the agent's native step launcher where there is a C compiler (npm ci
# runs this). Without one, agents start steps with the JavaScript launcher.
cd "$(dirname "$0")" || exit 1
mkdir -p build
if ${CC:-cc} -O2 -Wall -Wextra -o build/step-launcher.new step-launcher.c sandbox.c; then
  mv build/step-launcher.new build/step-launcher
else
  echo "step launcher: no working C compiler (\$CC or cc); agents will start steps with the JavaScript launcher" >&2
fi
