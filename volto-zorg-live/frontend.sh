#!/usr/bin/env bash
# The Volto frontend that `make test-volto` runs: Volto from the npm
# registry, unpacked into .app/volto, its build dependencies installed
# (once per version), and built with this add-on.
#
#   frontend.sh BACKEND_LIVE_URL
#
# Volto 18 (nodejs 20, the machine's apt package): Volto 19, which Plone 6.2 pairs with,
# needs packages that the registry here does not have (see README.txt).
set -euo pipefail
cd "$(dirname "$0")"
VOLTO=${VOLTO_VERSION:-18.23.0}
APP=.app/volto
LIVE_URL=$1

if [ ! -f .app/installed-$VOLTO ]; then
  rm -rf .app && mkdir -p .app/pack
  (cd .app/pack && npm pack --silent "@plone/volto@$VOLTO" >/dev/null)
  tar xzf .app/pack/plone-volto-$VOLTO.tgz -C .app
  mv .app/package $APP
  node prune.js $APP/package.json
  (cd $APP && CYPRESS_INSTALL_BINARY=0 npm install --no-audit --no-fund \
     --legacy-peer-deps --loglevel=error)
  touch .app/installed-$VOLTO
fi

# The add-on as a published one would be: in node_modules.
rm -rf $APP/node_modules/volto-zorg-live
mkdir -p $APP/node_modules/volto-zorg-live
cp -r package.json src $APP/node_modules/volto-zorg-live/

if [ ! -f .app/built ] || [ "$(cat .app/built)" != "$LIVE_URL $(cat package.json src/* | sha1sum)" ]; then
  (cd $APP && ADDONS=volto-zorg-live RAZZLE_LIVE_URL=$LIVE_URL \
     NODE_OPTIONS=--max-old-space-size=6144 \
     node_modules/.bin/razzle build --noninteractive)
  echo "$LIVE_URL $(cat package.json src/* | sha1sum)" > .app/built
fi
