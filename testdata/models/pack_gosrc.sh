#!/usr/bin/env bash
# Packs the Go toolchain's own non-test sources (the training corpus of
# testdata/models/train_gocoder.py) into one tar.xz: $1, default
# .devcarry/gosrc.tar.xz (a folder the device tool carries to the GPU host).
set -euo pipefail
out=${1:-.devcarry/gosrc.tar.xz}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
cd "$(go env GOROOT)/src"
find . -name '*.go' -not -name '*_test.go' -not -path '*/testdata/*' -not -path '*/vendor/*' -print0 |
	LC_ALL=C sort -z | tar --null -T - -cf - | xz -T2 -6 > "$out"
echo "$out: $(du -h "$out" | cut -f1), Go $(go env GOVERSION)"
