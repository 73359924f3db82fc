#!/usr/bin/env bash
# Server memory per idle TLS 1.3 connection, and the chan's share of it.
#
#   bench/chanmem.sh            2,000 connections per run
#   N=10000 bench/chanmem.sh    more
#
# Runs bench/chanmem.c in three modes: "ssl" (the SSL object alone after a
# blocking handshake), "bare" (bufferevent_openssl over the socket, as the
# push server creates it) and "chan" (the same inside a chan), with and
# without a client certificate. rss is resident memory, heap is what
# malloc hands out (mallinfo2), openssl is what OpenSSL itself holds; all
# per connection in bytes. chan - bare is the chan's own share.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-2000}
builddir=build-bench
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j"$(nproc)" --target strata-common >/dev/null
bin="$builddir/chanmem"
# shellcheck disable=SC2046
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Icommon \
	bench/chanmem.c -o "$bin" "$builddir/libstrata-common.a" \
	$(pkg-config --cflags --libs libevent_core libevent_extra libevent_openssl openssl jansson \
		libpq libxml-2.0) -lm
for cert in 1 0; do
	for mode in ssl bare chan; do
		"$bin" "$mode" "$n" "$cert"
	done
done
# After an AUTH-and-heartbeat-sized exchange: buffers must go back to idle size.
for mode in bare chan; do "$bin" "$mode" "$n" 0 2; done
