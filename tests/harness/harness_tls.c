/*
 * harness_tls.c — the certificates TLS tests need, made with openssl(1) the first time a test
 * program asks (see harness.h): EC P-256 keys, so that making them takes milliseconds.
 *
 * Threads: the test's main thread only.
 */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Runs openssl with args (NULL-terminated); fatal, with its stderr, if it fails. */
static void openssl(const char *first, ...) {
    const char *argv[40] = {"openssl", first};
    int argc = 2;
    va_list ap;
    va_start(ap, first);
    for (const char *arg; argc < 39 && (arg = va_arg(ap, const char *));)
        argv[argc++] = arg;
    va_end(ap);
    argv[argc] = NULL;
    char *err = NULL;
    int status = h_run(argv, NULL, &err);
    if (status != 0)
        h_fatal("openssl %s failed (status %d): %s", first, status, err ? err : "");
    free(err);
}

/* "DIR/NAMESUFFIX" into out. */
static void path_in(char *out, size_t size, const char *dir, const char *name, const char *suffix) {
    if ((size_t)snprintf(out, size, "%s/%s%s", dir, name, suffix) >= size)
        h_fatal("path too long: %s/%s%s", dir, name, suffix);
}

/* A key and a certificate signed by the CA (ca_cert, ca_key) with the given extensions. */
static void signed_cert(const char *dir, const char *name, const char *subject,
                        const char *extensions, const char *ca_cert, const char *ca_key, char *cert,
                        char *key, size_t size) {
    char csr[600], ext_name[64], serial[600];
    path_in(key, size, dir, name, ".key");
    path_in(cert, size, dir, name, ".crt");
    path_in(csr, sizeof(csr), dir, name, ".csr");
    path_in(serial, sizeof(serial), dir, "ca", ".srl");
    snprintf(ext_name, sizeof(ext_name), "tls/%s.ext", name);
    const char *ext = h_write_file(ext_name, extensions);
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", subject, NULL);
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAserial", serial,
            "-CAcreateserial", "-days", "3650", "-out", cert, "-extfile", ext, NULL);
}

/* A self-signed CA certificate and its key. */
static void ca(const char *dir, const char *name, const char *subject, char *cert, char *key,
               size_t size) {
    path_in(cert, size, dir, name, ".crt");
    path_in(key, size, dir, name, ".key");
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "3650", "-subj", subject, "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            NULL);
}

const h_tls_files_t *h_tls_files(void) {
    static h_tls_files_t files;
    static bool made;
    if (made)
        return &files;
    char dir[600], ca_key[600], other_ca_key[600], copy[700];
    path_in(dir, sizeof(dir), h_tmpdir(), "tls", "");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        h_fatal("mkdir %s: %s", dir, strerror(errno));

    ca(dir, "ca", "/CN=rkbridge test CA", files.ca_cert, ca_key, sizeof(ca_key));
    ca(dir, "other-ca", "/CN=some other CA", files.other_ca_cert, other_ca_key,
       sizeof(other_ca_key));
    signed_cert(dir, "server", "/CN=localhost",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth\n"
                "keyUsage=critical,digitalSignature\n",
                files.ca_cert, ca_key, files.server_cert, files.server_key,
                sizeof(files.server_cert));
    signed_cert(dir, "client", "/CN=rkbridge-client",
                "extendedKeyUsage=clientAuth\n"
                "keyUsage=critical,digitalSignature\n",
                files.ca_cert, ca_key, files.client_cert, files.client_key,
                sizeof(files.client_cert));
    signed_cert(dir, "other-client", "/CN=someone else",
                "extendedKeyUsage=clientAuth\n"
                "keyUsage=critical,digitalSignature\n",
                files.other_ca_cert, other_ca_key, files.other_client_cert, files.other_client_key,
                sizeof(files.other_client_cert));
    path_in(files.client_key_encrypted, sizeof(files.client_key_encrypted), dir, "client-encrypted",
            ".key");
    openssl("pkey", "-in", files.client_key, "-out", files.client_key_encrypted, "-aes256",
            "-passout", "pass:" H_TLS_KEY_PASSWORD, NULL);

    /* The CA alone in a directory, hashed as redis.cacert.dir expects. */
    path_in(files.ca_dir, sizeof(files.ca_dir), dir, "ca-dir", "");
    if (mkdir(files.ca_dir, 0700) != 0 && errno != EEXIST)
        h_fatal("mkdir %s: %s", files.ca_dir, strerror(errno));
    snprintf(copy, sizeof(copy), "%s/ca.pem", files.ca_dir);
    openssl("x509", "-in", files.ca_cert, "-out", copy, NULL);
    openssl("rehash", files.ca_dir, NULL);
    made = true;
    return &files;
}
