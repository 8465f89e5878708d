#!/usr/bin/env bash
# Installs Apertium's English-French translation (by pivot through Spanish) from Debian's packages,
# when this machine has apt-get and root or passwordless sudo. Anywhere else it says in one line that
# translation is off and how to turn it on; everything else works without it.
set -u
PACKAGES="apertium apertium-eng-spa apertium-fr-es"
MODES=/usr/share/apertium/modes
have() { for m in eng-spa es-fr fr-es spa-eng; do [ -f "$MODES/$m.mode" ] || return 1; done; command -v lt-proc >/dev/null; }
off() { echo "translation is off: $1; to turn it on, install the Debian packages $PACKAGES"; exit 0; }

have && exit 0
command -v apt-get >/dev/null || off "no apt-get here"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else off "installing needs root"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq $PACKAGES >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq $PACKAGES >/dev/null 2>&1; } \
    || off "apt-get could not install them"
have && echo "translation is on: Apertium installed ($PACKAGES)" || off "the packages installed without their modes"
