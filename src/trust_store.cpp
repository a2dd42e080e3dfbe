// choose_trust_store (declared in tls.h): which CA bundle or directory to load. Kept
// apart from the TLS engine because it is pure: existence checks are injected.
//
// The binary is also built statically, and a static OpenSSL only knows the OPENSSLDIR
// it was configured with on the build machine, so the usual locations of every
// platform we run on are listed here rather than left to the library's defaults.
#include "tls.h"

namespace op {
namespace {

// Single-file bundles, most common first. The first one present wins.
const char* const kBundleFiles[] = {
    "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Gentoo, Arch, OpenWrt
    "/etc/pki/tls/certs/ca-bundle.crt",                   // RHEL, Fedora, CentOS
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // RHEL/Fedora extracted store
    "/etc/ssl/ca-bundle.pem",                             // openSUSE, SLES
    "/etc/ssl/cert.pem",                                  // Alpine, OpenWrt, macOS, OpenBSD, FreeBSD
    "/etc/pki/tls/cacert.pem",                            // OpenELEC
    "/usr/local/share/certs/ca-root-nss.crt",             // FreeBSD's ca_root_nss package
    "/usr/share/ssl/certs/ca-bundle.crt",                 // old Red Hat layouts
};

// Directories of hashed certificates (<subject-hash>.0), used only without a bundle.
const char* const kCertDirs[] = {
    "/etc/ssl/certs",                 // Debian and most others (c_rehash'ed)
    "/system/etc/security/cacerts",   // Android
    "/etc/pki/tls/certs",             // RHEL, Fedora
};

}  // namespace

TrustChoice choose_trust_store(const TrustSettings& trust,
                               bool (*file_exists)(const std::string&),
                               bool (*dir_exists)(const std::string&)) {
    TrustChoice choice;
    // An explicit -ca-file is taken as given, even when missing: loading it then
    // fails with its name, which beats silently trusting something else.
    if (!trust.ca_file.empty()) {
        choice.file = trust.ca_file;
        return choice;
    }
    // The environment variables count only when they point at something, so a stale
    // SSL_CERT_FILE left by another toolchain does not stop the system store.
    if (!trust.env_cert_file.empty() && file_exists(trust.env_cert_file)) choice.file = trust.env_cert_file;
    for_each_cert_dir(trust.env_cert_dir, [&](const std::string& dir) {
        if (!dir_exists(dir)) return;
        if (!choice.dir.empty()) choice.dir += kCertDirSeparator;
        choice.dir += dir;
    });
    if (!choice.file.empty() || !choice.dir.empty()) return choice;
    // Windows keeps its trust anchors in the registry, read through CryptoAPI: no
    // file of the list below is the system's there (under Wine, /etc/ssl/... would even
    // name the Linux host's files).
    if (trust.os_store) {
        choice.os_store = true;
        return choice;
    }

    for (const char* path : kBundleFiles) {
        if (file_exists(path)) {
            choice.file = path;
            return choice;
        }
    }
    for (const char* path : kCertDirs) {
        if (dir_exists(path)) {
            choice.dir = path;
            return choice;
        }
    }
    return choice;
}

}  // namespace op
