// OpenSSL (Debian: libssl-dev, pkg-config openssl): the TLS client of `tls: true`
// proxies, driven through memory BIOs so it never touches a socket itself.
#pragma once
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
