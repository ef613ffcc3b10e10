#!/usr/bin/env bash
# Installs the system library open3d needs (libusb-1.0-0) when it is missing: with apt when root, otherwise
# prints the command to run. Does nothing when the library is already there.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "open3d needs libusb-1.0-0; run: sudo apt-get install -y libusb-1.0-0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends libusb-1.0-0 >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y --no-install-recommends libusb-1.0-0 >/dev/null; }
echo "installed libusb-1.0-0"
