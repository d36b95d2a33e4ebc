#!/bin/sh
# Install a Debian package that some tests need, when this user can (root with apt-get);
# otherwise say which tests will be skipped. $1: the package, $2: what needs it.
package=$1
needed_by=$2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's $package for $needed_by"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package") >/dev/null 2>&1 \
        || echo "$package could not be installed: $needed_by will be skipped"
else
    echo "$package is missing and only root with apt-get can install it: $needed_by will be skipped"
fi
