#!/usr/bin/env bash
# Installs what building and testing Strata needs on Debian 12.
# Non-interactive; does nothing when everything is already there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libpq-dev libxml2-dev libxml2-utils libssl-dev
      libevent-dev libjansson-dev libcunit1-dev postgresql-15 postgresql-client-15 openssl
      util-linux procps iproute2 valgrind nftables curl)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	# Strata's scripts run their own throwaway clusters; a machine that has
	# no PostgreSQL yet gets no system cluster from this install either.
	if ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q 'install ok installed' &&
		[ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
