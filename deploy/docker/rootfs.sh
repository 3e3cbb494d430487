#!/bin/sh
# Makes a distroless-style root file system in DEST for the binary BIN, for the runtime stage of the
# images (FROM scratch): the binary in /usr/local/bin, the C libraries it links (copied from the
# build image, so they are the ones it was linked against), CA certificates, /etc/passwd and
# /etc/group with the non-root user 65532 (nonroot), /etc/nsswitch.conf, /tmp, and each DIR
# (created owned by 65532). No shell, no package manager.
#
#   usage: rootfs.sh BIN DEST [DIR...]
set -eu
bin=$1
dest=$2
shift 2
install -D -m 0755 "$bin" "$dest/usr/local/bin/$(basename "$bin")"
# `ldd` lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the loader
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  cp --parents -L "$lib" "$dest/"
done
mkdir -p "$dest/etc/ssl/certs" "$dest/tmp" "$dest/home/nonroot"
cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$dest/etc/group"
printf 'hosts: files dns\n' > "$dest/etc/nsswitch.conf"
chmod 1777 "$dest/tmp"
chown 65532:65532 "$dest/home/nonroot"
for dir in "$@"; do
  mkdir -p "$dest/$dir"
  chown 65532:65532 "$dest/$dir"
done
