#!/bin/sh
# Builds the static site into out/: a stand-in for `next build` with `output: 'export'`.
set -eu
rm -rf out
mkdir -p out
cp -R site/. out/
headline=$(cat headline.txt)
sed -i "s|__HEADLINE__|$headline|; s|__SHA__|${GANTRY_SHA:-local}|" out/index.html
echo "built $(find out -type f | wc -l) files into out/"
