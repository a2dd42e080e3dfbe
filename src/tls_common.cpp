// The library-neutral half of tls.h: the start-up checks of the trust store, loading it
// once, host-name helpers, PEM and DER reading, session creation. The backend a build
// compiles (tls_openssl.cpp or tls_mbedtls.cpp) does the rest; see tls_internal.h.
#include "tls_internal.h"

#include <cerrno>
#include <cstdio>
#include <iterator>

#include "http_chars.h"  // http_chars::to_lower
#include "sys.h"  // sys::file_exists, sys::dir_exists

namespace op {
namespace tls_internal {
namespace {

// --- host names ----------------------------------------------------------------------

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Four decimal parts 0-255 into out[0..3]. Leading zeros are read as decimal, as
// OpenSSL's a2i_IPADDRESS reads them (targets never have any: target.cpp refuses them).
bool parse_dotted_quad(std::string_view s, unsigned char* out) {
    std::size_t part = 0, digits = 0;
    unsigned value = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '.') {
            if (digits == 0 || part == 4) return false;
            out[part++] = static_cast<unsigned char>(value);
            digits = 0;
            value = 0;
            continue;
        }
        if (!is_digit(s[i]) || ++digits > 3) return false;
        value = value * 10 + static_cast<unsigned>(s[i] - '0');
        if (value > 255) return false;
    }
    return part == 4;
}

// The colon-separated groups of one side of an IPv6 address's "::" (or of the whole
// address), appended as bytes; a dotted quad may end the last side. false if malformed.
bool parse_ipv6_groups(std::string_view s, bool last_side, unsigned char* out, std::size_t& n) {
    if (s.empty()) return true;
    for (;;) {
        std::size_t colon = s.find(':');
        std::string_view group = s.substr(0, colon);
        if (colon == std::string_view::npos && last_side && group.find('.') != std::string_view::npos) {
            if (n + 4 > 16 || !parse_dotted_quad(group, out + n)) return false;
            n += 4;
            return true;
        }
        if (group.empty() || group.size() > 4 || n + 2 > 16) return false;
        unsigned value = 0;
        for (char c : group) {
            int v = hex_value(c);
            if (v < 0) return false;
            value = value * 16 + static_cast<unsigned>(v);
        }
        out[n++] = static_cast<unsigned char>(value >> 8);
        out[n++] = static_cast<unsigned char>(value & 0xff);
        if (colon == std::string_view::npos) return true;
        s.remove_prefix(colon + 1);
    }
}

bool parse_ipv6(std::string_view s, unsigned char* out) {
    std::size_t gap = s.find("::");
    if (gap == std::string_view::npos) {
        std::size_t n = 0;
        return parse_ipv6_groups(s, true, out, n) && n == 16;
    }
    std::string_view tail = s.substr(gap + 2);
    if (tail.find("::") != std::string_view::npos || (!tail.empty() && tail.front() == ':')) return false;
    unsigned char head_bytes[16], tail_bytes[16];
    std::size_t head_n = 0, tail_n = 0;
    if (!parse_ipv6_groups(s.substr(0, gap), false, head_bytes, head_n) ||
        !parse_ipv6_groups(tail, true, tail_bytes, tail_n) || head_n + tail_n > 14) {
        return false;  // "::" stands for at least one group of zeros
    }
    std::memset(out, 0, 16);
    std::memcpy(out, head_bytes, head_n);
    std::memcpy(out + 16 - tail_n, tail_bytes, tail_n);
    return true;
}

// --- DER -------------------------------------------------------------------------------

// One element of DER: its tag, and where its contents start and end.
struct DerElement {
    unsigned char tag;
    const unsigned char* body;
    const unsigned char* next;
};

bool der_element(const unsigned char* p, const unsigned char* end, DerElement& out) {
    if (end - p < 2 || (p[0] & 0x1f) == 0x1f) return false;  // no multi-byte tags in a Certificate
    out.tag = p[0];
    std::size_t len = p[1];
    const unsigned char* q = p + 2;
    if (len & 0x80) {
        std::size_t n = len & 0x7f;
        if (n == 0 || n > 4 || static_cast<std::size_t>(end - q) < n) return false;
        len = 0;
        for (std::size_t i = 0; i < n; ++i) len = (len << 8) | q[i];
        q += n;
    }
    if (static_cast<std::size_t>(end - q) < len) return false;
    out.body = q;
    out.next = q + len;
    return true;
}

// Where a DER Certificate's parts are (RFC 5280: Certificate = tbsCertificate, ...;
// tbsCertificate = [0] version, serialNumber, signature, issuer, validity, subject,
// subjectPublicKeyInfo, [1], [2], [3] extensions), without decoding any of them.
struct CertificateLayout {
    const unsigned char* cert_end;     // the Certificate element ends here
    const unsigned char* subject;      // its subject Name element, tag and length included
    const unsigned char* subject_end;
    const unsigned char* after_key;    // the fields after subjectPublicKeyInfo (null when
    const unsigned char* tbs_end;      // that is not a SEQUENCE), up to tbs_end
};

bool certificate_layout(const unsigned char* p, std::size_t len, CertificateLayout& out) {
    DerElement cert, tbs, e;
    if (!der_element(p, p + len, cert) || cert.tag != 0x30) return false;
    if (!der_element(cert.body, cert.next, tbs) || tbs.tag != 0x30) return false;
    const unsigned char* q = tbs.body;
    if (!der_element(q, tbs.next, e)) return false;
    if (e.tag == 0xa0) {  // explicit version
        q = e.next;
        if (!der_element(q, tbs.next, e)) return false;
    }
    if (e.tag != 0x02) return false;  // serialNumber
    q = e.next;
    for (int i = 0; i < 4; ++i) {  // signature, issuer, validity, subject: SEQUENCEs
        if (!der_element(q, tbs.next, e) || e.tag != 0x30) return false;
        if (i < 3) q = e.next;
    }
    out.cert_end = cert.next;
    out.subject = q;
    out.subject_end = e.next;
    // subjectPublicKeyInfo is looked at only by those who read past it (the extensions):
    // what a bundle's certificates must get right is the framing up to the subject.
    DerElement key;
    out.after_key = der_element(e.next, tbs.next, key) && key.tag == 0x30 ? key.next : nullptr;
    out.tbs_end = tbs.next;
    return true;
}

// OBJECT IDENTIFIER elements as DER, whole (tag and length included).
// subjectAltName, 2.5.29.17
constexpr unsigned char kOidSubjectAltName[] = {0x06, 0x03, 0x55, 0x1d, 0x11};
// id-kp-serverAuth, 1.3.6.1.5.5.7.3.1
constexpr unsigned char kOidServerAuth[] = {0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
// anyExtendedKeyUsage, 2.5.29.37.0
constexpr unsigned char kOidAnyExtendedKeyUsage[] = {0x06, 0x04, 0x55, 0x1d, 0x25, 0x00};

template <std::size_t N>
bool is_oid(const unsigned char* at, const DerElement& e, const unsigned char (&oid)[N]) {
    return static_cast<std::size_t>(e.next - at) == N && std::memcmp(at, oid, N) == 0;
}

// Whether a SEQUENCE OF OBJECT IDENTIFIER names serverAuth or anyExtendedKeyUsage.
bool names_server_auth(const DerElement& list) {
    DerElement oid;
    for (const unsigned char* q = list.body; q < list.next && der_element(q, list.next, oid); q = oid.next) {
        if (is_oid(q, oid, kOidServerAuth) || is_oid(q, oid, kOidAnyExtendedKeyUsage)) return true;
    }
    return false;
}

// Base64 as PEM bodies have it: whitespace (line ends included) anywhere, '=' padding
// only at the end, whole groups of four. Anything else is malformed.
bool base64_decode(std::string_view in, std::string& out) {
    if (in.size() > 1u << 20) return false;  // no certificate is a megabyte
    out.clear();
    out.reserve(in.size() / 4 * 3);
    unsigned bits = 0;
    int have = 0, count = 0, padding = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (is_digit(c)) v = c - '0' + 52;
        else if (c == '+') v = 62;
        else if (c == '/') v = 63;
        else if (c == '=') v = -1;
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        else return false;
        ++count;
        if (v < 0) {
            if (++padding > 2) return false;
            continue;
        }
        if (padding > 0) return false;  // data after padding
        bits = (bits << 6) | static_cast<unsigned>(v);
        have += 6;
        if (have >= 8) {
            have -= 8;
            out.push_back(static_cast<char>((bits >> have) & 0xff));
        }
    }
    return count % 4 == 0 && !out.empty();
}

// --- start-up checks -------------------------------------------------------------------

// How a trust file is named in errors: by the setting that chose it.
std::string describe_trust_file(const TrustSettings& trust, const std::string& file) {
    if (file == trust.ca_file) return "-ca-file " + file;
    if (file == trust.env_cert_file) return "SSL_CERT_FILE " + file;
    return "CA bundle " + file;
}

// Whether the file holds a PEM block that OpenSSL's bundle loader takes (a certificate,
// or a CRL): the BEGIN line only, read in chunks until one is found. The cheap start-up
// check that keeps a wrong file (a key, a DER certificate, a text file) a start-up
// error, without parsing what it holds.
bool has_pem_begin_line(std::FILE* f) {
    static const char* const kBeginLines[] = {
        "-----BEGIN CERTIFICATE-----", "-----BEGIN TRUSTED CERTIFICATE-----",
        "-----BEGIN X509 CERTIFICATE-----", "-----BEGIN X509 CRL-----",
    };
    constexpr std::size_t kOverlap = 40;  // longer than any of them: a line split by a chunk
    char buf[8192];
    std::size_t have = 0;
    for (;;) {
        std::size_t n = std::fread(buf + have, 1, sizeof buf - have, f);
        if (n == 0) return false;
        have += n;
        std::string_view text(buf, have);
        for (const char* line : kBeginLines) {
            if (text.find(line) != std::string_view::npos) return true;
        }
        if (have > kOverlap) {
            std::memmove(buf, buf + have - kOverlap, kOverlap);
            have = kOverlap;
        }
    }
}

}  // namespace

std::string bare_host(std::string_view name) {
    if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
        name = name.substr(1, name.size() - 2);
    }
    std::string host(name);
    if (host.find(':') != std::string::npos) {
        std::size_t zone = host.find('%');
        if (zone != std::string::npos) host.resize(zone);
    }
    return host;
}

std::string tls_host(std::string_view name) {
    std::string host = bare_host(name);
    if (!host.empty() && host.back() == '.') host.pop_back();
    return host;
}

bool dns_name_matches(std::string_view pattern, std::string_view host) {
    auto same = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if (http_chars::to_lower(a[i]) != http_chars::to_lower(b[i])) return false;
        return true;
    };
    if (same(pattern, host)) return true;
    if (pattern.substr(0, 2) != "*.") return false;
    const std::string_view parent = pattern.substr(1);  // ".example.test"
    const std::size_t second_dot = parent.find('.', 1);
    if (second_dot == std::string_view::npos || second_dot + 1 == parent.size()) return false;  // one label
    if (parent.find('*') != std::string_view::npos) return false;  // one wildcard, leftmost
    const std::size_t first_dot = host.find('.');
    if (first_dot == 0 || first_dot == std::string_view::npos) return false;  // no first label to stand for
    return same(parent, host.substr(first_dot));
}

bool parse_ip_literal(std::string_view host, IpAddress& out) {
    out = IpAddress{};
    if (host.find(':') != std::string_view::npos) {
        if (!parse_ipv6(host, out.bytes)) return false;
        out.len = 16;
        return true;
    }
    if (!parse_dotted_quad(host, out.bytes)) return false;
    out.len = 4;
    return true;
}

bool is_ip_literal(std::string_view host) {
    IpAddress ip;
    return parse_ip_literal(host, ip);
}

bool read_whole_file(const std::string& path, std::string& out) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char buf[16384];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    bool ok = std::ferror(f) == 0;
    int saved = errno;
    std::fclose(f);
    errno = saved;
    return ok;
}

namespace {

// read_pem_bundle's work on a piece of a bundle: `base` is where the piece starts in
// the whole (for block offsets), `count` the certificates before it (for numbering).
bool read_pem_blocks(std::string_view text, std::size_t base, std::size_t& count,
                     const std::function<bool(PemCertificate&)>& take, std::string& error) {
    static const struct {
        const char* begin;
        const char* end;
        bool trusted_form;  // "TRUSTED CERTIFICATE": OpenSSL's trust settings follow the certificate
    } kBlocks[] = {
        {"-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", false},
        {"-----BEGIN X509 CERTIFICATE-----", "-----END X509 CERTIFICATE-----", false},
        {"-----BEGIN TRUSTED CERTIFICATE-----", "-----END TRUSTED CERTIFICATE-----", true},
    };
    std::size_t pos = 0;
    for (;;) {
        std::size_t at = text.find("-----BEGIN ", pos);
        if (at == std::string::npos) break;
        const auto* kind = std::find_if(std::begin(kBlocks), std::end(kBlocks), [&](const auto& k) {
            return text.compare(at, std::strlen(k.begin), k.begin) == 0;
        });
        if (kind == std::end(kBlocks)) {  // a CRL, a key...: skipped, as unused for trust
            pos = at + 1;
            continue;
        }
        ++count;
        std::size_t body = at + std::strlen(kind->begin);
        std::size_t stop = text.find(kind->end, body);
        if (stop == std::string::npos) {
            error = "certificate " + std::to_string(count) + " has no END line";
            return false;
        }
        pos = stop + std::strlen(kind->end);
        PemCertificate cert;
        cert.trusted_form = kind->trusted_form;
        cert.block_offset = base + at;
        cert.block_len = pos - at;
        cert.number = count;
        CertificateLayout layout;
        const unsigned char* der = nullptr;
        bool ok = base64_decode(text.substr(body, stop - body), cert.der);
        if (ok) {
            der = reinterpret_cast<const unsigned char*>(cert.der.data());
            ok = certificate_layout(der, cert.der.size(), layout);
        }
        if (ok) {
            cert.cert_len = static_cast<std::size_t>(layout.cert_end - der);
            cert.subject_offset = static_cast<std::size_t>(layout.subject - der);
            cert.subject_len = static_cast<std::size_t>(layout.subject_end - layout.subject);
        }
        if (!ok || !take(cert)) {
            error = "certificate " + std::to_string(count) + " is malformed";
            return false;
        }
    }
    return true;
}

}  // namespace

bool read_pem_bundle(const std::string& text, const std::function<bool(PemCertificate&)>& take,
                     std::string& error) {
    std::size_t count = 0;
    if (!read_pem_blocks(text, 0, count, take, error)) return false;
    if (count == 0) {
        error = "no certificate found";
        return false;
    }
    return true;
}

namespace {

// FNV-1a, 64 bits: a key for the index, not a defence (a collision costs one more
// certificate read back, which mbedTLS then turns down).
struct KeyHash {
    std::uint64_t h = 0xcbf29ce484222325u;
    void byte(unsigned char c) {
        h ^= c;
        h *= 0x100000001b3u;
    }
    void length(std::size_t n) {
        for (int i = 0; i < 4; ++i) byte(static_cast<unsigned char>(n >> (8 * i)));
    }
};

}  // namespace

std::uint64_t name_key(const unsigned char* der, std::size_t len) {
    // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue);
    // AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY }.
    KeyHash h;
    const unsigned char* end = der + len;
    DerElement name, rdn, atv, oid, value;
    bool ok = der_element(der, end, name) && name.tag == 0x30 && name.next == end;
    for (const unsigned char* r = name.body; ok && r < name.next; r = rdn.next) {
        ok = der_element(r, name.next, rdn) && rdn.tag == 0x31;
        for (const unsigned char* a = rdn.body; ok && a < rdn.next; a = atv.next) {
            ok = der_element(a, rdn.next, atv) && atv.tag == 0x30 && der_element(atv.body, atv.next, oid) &&
                 oid.tag == 0x06 && der_element(oid.next, atv.next, value);
            if (!ok) break;
            h.length(static_cast<std::size_t>(oid.next - oid.body));
            for (const unsigned char* p = oid.body; p < oid.next; ++p) h.byte(*p);
            // UTF8String (0x0c) and PrintableString (0x13) compare across tags, without
            // ASCII case; 0 stands for both (no value has that tag).
            const bool text = value.tag == 0x0c || value.tag == 0x13;
            h.byte(text ? 0 : value.tag);
            h.length(static_cast<std::size_t>(value.next - value.body));
            for (const unsigned char* p = value.body; p < value.next; ++p) {
                h.byte(text && *p >= 'A' && *p <= 'Z' ? static_cast<unsigned char>(*p + 32) : *p);
            }
            h.byte(atv.next < rdn.next ? 1 : 2);  // the RDN goes on, or ends here
        }
    }
    if (ok) return h.h;
    KeyHash raw;
    raw.byte(0xff);
    for (std::size_t i = 0; i < len; ++i) raw.byte(der[i]);
    return raw.h;
}

TrustIndex::~TrustIndex() {
    if (file_) std::fclose(file_);
}

bool TrustIndex::load(const std::string& path, const std::string& label,
                      const std::function<bool(const PemCertificate&)>& anchor, std::string& error) {
    label_ = label;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        error = "cannot read " + label + ": " + std::strerror(errno);
        return false;
    }
    // Unbuffered: find() reads whole blocks, and no stdio buffer stays allocated.
    std::setvbuf(f, nullptr, _IONBF, 0);
    std::vector<Entry> entries;
    const std::function<bool(PemCertificate&)> take = [&](PemCertificate& cert) {
        if (!anchor(cert)) return true;
        const auto* der = reinterpret_cast<const unsigned char*>(cert.der.data());
        Entry e{};
        e.key = name_key(der + cert.subject_offset, cert.subject_len);
        e.offset = cert.block_offset;
        e.block_len = static_cast<std::uint32_t>(cert.block_len);  // a block is under 2 MiB (base64_decode)
        e.number = static_cast<std::uint32_t>(cert.number);
        digest_(der, cert.der.size(), e.digest);
        entries.push_back(e);
        return true;
    };
    // Read in pieces, never whole: a 200 KB buffer, once touched, would stay in the
    // heap (and in RSS) after it is freed, which is what the index is there to avoid.
    // `window` holds what is not parsed yet: from the last BEGIN line seen (a block
    // maybe incomplete) to what was read last.
    std::string window, why;
    std::size_t window_offset = 0, count = 0;
    bool ok = true, eof = false;
    char buf[8192];
    while (ok && !eof) {
        const std::size_t n = std::fread(buf, 1, sizeof buf, f);
        if (n == 0) {
            if (std::ferror(f)) {
                error = "cannot read " + label + ": " + std::strerror(errno);
                std::fclose(f);
                return false;
            }
            eof = true;
        }
        window.append(buf, n);
        std::size_t cut = window.size();  // at the end of the file: all of it
        if (!eof) {
            cut = window.rfind("-----BEGIN ");
            if (cut == std::string::npos) {  // text between blocks, perhaps a BEGIN line's start
                cut = window.size() > 16 ? window.size() - 16 : 0;
                window_offset += cut;
                window.erase(0, cut);
                continue;
            }
        }
        ok = read_pem_blocks(std::string_view(window).substr(0, cut), window_offset, count, take, why);
        window_offset += cut;
        window.erase(0, cut);
    }
    if (ok && count == 0) why = "no certificate found";
    if (!ok || count == 0) {
        std::fclose(f);
        error = label + " holds no usable PEM certificates (" + why + ")";
        return false;
    }
    std::string().swap(window);
    entries.shrink_to_fit();
    entries_ = std::move(entries);
    file_ = f;
    return true;
}

bool TrustIndex::read_back(const Entry& entry, PemCertificate& out, std::string& error) const {
    std::string block(entry.block_len, '\0');
    bool read = false;
    int read_errno = 0;
    {
        std::lock_guard<std::mutex> lock(file_mutex_);
        if (file_) {
            std::clearerr(file_);
            read = std::fseek(file_, static_cast<long>(entry.offset), SEEK_SET) == 0 &&
                   std::fread(&block[0], 1, block.size(), file_) == block.size();
            read_errno = std::ferror(file_) ? errno : 0;
        }
    }
    const std::string which = " (certificate " + std::to_string(entry.number) + ")";
    if (!read) {
        error = "cannot read " + label_ + " again" + which + ": " +
                (read_errno != 0 ? std::strerror(read_errno) : "it is shorter than when it was loaded") +
                "; restart the proxy to load it again";
        return false;
    }
    int count = 0;
    std::string why;
    bool same = read_pem_bundle(
                    block,
                    [&](PemCertificate& cert) {
                        if (++count == 1) out = std::move(cert);
                        return true;
                    },
                    why) &&
                count == 1;
    if (same) {
        unsigned char digest[32];
        digest_(reinterpret_cast<const unsigned char*>(out.der.data()), out.der.size(), digest);
        same = std::memcmp(digest, entry.digest, sizeof digest) == 0;
    }
    if (!same) {
        error = label_ + " has changed since it was loaded" + which + "; restart the proxy to load it again";
        return false;
    }
    return true;
}

bool TrustIndex::find(const unsigned char* name, std::size_t len,
                      const std::function<void(const unsigned char*, std::size_t)>& use, std::string& error) const {
    const std::uint64_t key = name_key(name, len);
    for (const Entry& entry : entries_) {
        if (entry.key != key) continue;
        PemCertificate cert;
        if (!read_back(entry, cert, error)) return false;
        use(reinterpret_cast<const unsigned char*>(cert.der.data()), cert.cert_len);
    }
    return true;
}

bool certificate_has_ip_san(const unsigned char* der, std::size_t len, const IpAddress& ip) {
    CertificateLayout layout;
    if (ip.len == 0 || !certificate_layout(der, len, layout) || !layout.after_key) return false;
    DerElement e, extensions, ext, value, names, name;
    for (const unsigned char* q = layout.after_key; q < layout.tbs_end; q = e.next) {
        if (!der_element(q, layout.tbs_end, e)) return false;
        if (e.tag != 0xa3) continue;  // [1] issuerUniqueID, [2] subjectUniqueID
        if (!der_element(e.body, e.next, extensions) || extensions.tag != 0x30) return false;
        for (const unsigned char* x = extensions.body; x < extensions.next; x = ext.next) {
            // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
            DerElement oid;
            if (!der_element(x, extensions.next, ext) || ext.tag != 0x30) return false;
            if (!der_element(ext.body, ext.next, oid) || !is_oid(ext.body, oid, kOidSubjectAltName)) continue;
            const unsigned char* v = oid.next;
            if (!der_element(v, ext.next, value)) return false;
            if (value.tag == 0x01 && !der_element(value.next, ext.next, value)) return false;
            if (value.tag != 0x04 || !der_element(value.body, value.next, names) || names.tag != 0x30) return false;
            for (const unsigned char* n = names.body; n < names.next; n = name.next) {
                if (!der_element(n, names.next, name)) return false;
                const std::size_t size = static_cast<std::size_t>(name.next - name.body);
                if (name.tag == 0x87 && size == ip.len && std::memcmp(name.body, ip.bytes, size) == 0) return true;
            }
            return false;  // one subjectAltName extension per certificate (RFC 5280 4.2)
        }
        return false;
    }
    return false;
}

AuxTrust server_auth_trust(const unsigned char* aux, std::size_t len) {
    // X509_CERT_AUX ::= SEQUENCE { trust SEQUENCE OF OBJECT OPTIONAL,
    //                              reject [0] IMPLICIT SEQUENCE OF OBJECT OPTIONAL, ... }
    DerElement seq, e;
    if (!der_element(aux, aux + len, seq) || seq.tag != 0x30) return AuxTrust::Rejected;  // never trusted
    bool trust_list = false, trusted = false;
    for (const unsigned char* q = seq.body; q < seq.next; q = e.next) {
        if (!der_element(q, seq.next, e)) return AuxTrust::Rejected;
        if (e.tag == 0x30) {
            trust_list = true;
            trusted = names_server_auth(e);
        } else if (e.tag == 0xa0 && names_server_auth(e)) {
            return AuxTrust::Rejected;
        }
    }
    return trust_list && !trusted ? AuxTrust::Rejected : AuxTrust::Anchor;
}

bool TlsContextBase::ready(std::string& error) {
    std::call_once(built_, [this] {
        build_error_ = build();
        built_ok_ = build_error_.empty();
    });
    if (!built_ok_) error = build_error_;
    return built_ok_;
}

bool TlsContextBase::read_trust_file(const std::function<bool(PemCertificate&)>& take, std::string& error) const {
    // The file was readable at start-up; it is read again here because it may have
    // changed or gone since.
    std::string text, why;
    if (!read_whole_file(trust_.file, text)) {
        error = "cannot read " + file_label_ + ": " + std::strerror(errno);
        return false;
    }
    if (!read_pem_bundle(text, take, why)) {
        error = file_label_ + " holds no usable PEM certificates (" + why + ")";
        return false;
    }
    return true;
}

std::string alert_reason(unsigned char alert) {
    static const struct {
        unsigned char code;
        const char* text;
    } kAlerts[] = {
        {10, "sslv3 alert unexpected message"},
        {20, "sslv3 alert bad record mac"},
        {21, "tlsv1 alert decryption failed"},
        {22, "tlsv1 alert record overflow"},
        {30, "sslv3 alert decompression failure"},
        {40, "sslv3 alert handshake failure"},
        {41, "sslv3 alert no certificate"},
        {42, "sslv3 alert bad certificate"},
        {43, "sslv3 alert unsupported certificate"},
        {44, "sslv3 alert certificate revoked"},
        {45, "sslv3 alert certificate expired"},
        {46, "sslv3 alert certificate unknown"},
        {47, "sslv3 alert illegal parameter"},
        {48, "tlsv1 alert unknown ca"},
        {49, "tlsv1 alert access denied"},
        {50, "tlsv1 alert decode error"},
        {51, "tlsv1 alert decrypt error"},
        {60, "tlsv1 alert export restriction"},
        {70, "tlsv1 alert protocol version"},
        {71, "tlsv1 alert insufficient security"},
        {80, "tlsv1 alert internal error"},
        {86, "tlsv1 alert inappropriate fallback"},
        {90, "tlsv1 alert user cancelled"},
        {100, "tlsv1 alert no renegotiation"},
        {109, "tlsv13 alert missing extension"},
        {110, "tlsv1 unsupported extension"},
        {111, "tlsv1 certificate unobtainable"},
        {112, "tlsv1 unrecognized name"},
        {113, "tlsv1 bad certificate status response"},
        {114, "tlsv1 bad certificate hash value"},
        {115, "tlsv1 alert unknown psk identity"},
        {116, "tlsv13 alert certificate required"},
        {120, "tlsv1 alert no application protocol"},
    };
    for (const auto& a : kAlerts) {
        if (a.code == alert) return a.text;
    }
    return "fatal alert " + std::to_string(alert) + " from the peer";
}

std::string verify_failed(const char* reason) { return std::string("certificate verify failed: ") + reason; }

}  // namespace tls_internal

using namespace tls_internal;

std::unique_ptr<TlsClientContext> TlsClientContext::create(const TrustSettings& trust, std::string& error) {
    TrustChoice choice = choose_trust_store(trust, sys::file_exists, sys::dir_exists);
    if (choice.file.empty() && choice.dir.empty() && !choice.os_store) {
        error = "no CA certificate bundle found (SSL_CERT_FILE and SSL_CERT_DIR unset or missing, "
                "none of the usual system paths such as /etc/ssl/certs/ca-certificates.crt or "
                "/etc/pki/tls/certs/ca-bundle.crt exist); pass -ca-file with a PEM bundle";
        return nullptr;
    }
    // Only what is cheap is checked here (the file can be read and has a PEM
    // certificate in it; the directory exists): parsing waits for the first handshake.
    std::string label;
    if (!choice.file.empty()) {
        label = describe_trust_file(trust, choice.file);
        std::FILE* f = std::fopen(choice.file.c_str(), "rb");
        if (!f) {
            error = "cannot read " + label + ": " + std::strerror(errno);
            return nullptr;
        }
        bool pem = has_pem_begin_line(f);
        bool read_error = std::ferror(f) != 0;
        int read_errno = errno;
        std::fclose(f);
        if (read_error) {
            error = "cannot read " + label + ": " + std::strerror(read_errno);
            return nullptr;
        }
        if (!pem) {
            error = label + " holds no usable PEM certificates (no -----BEGIN CERTIFICATE----- line)";
            return nullptr;
        }
    }

    std::string source = choice.file;
    if (!choice.dir.empty()) source += (source.empty() ? "" : " and ") + choice.dir;
    if (choice.os_store) source = "the system certificate stores (ROOT, CA)";
    return new_tls_context(std::move(choice), std::move(label), std::move(source));
}

std::unique_ptr<TlsSession> TlsSession::create(TlsClientContext& ctx, std::string_view server_name,
                                               unsigned short port) {
    std::string host = tls_host(server_name);
    if (host.empty()) return nullptr;  // nothing to verify against: never connect unverified
    // Every context comes from TlsClientContext::create, hence from new_tls_context().
    auto& context = static_cast<TlsContextBase&>(ctx);
    std::string error;
    if (!context.ready(error)) return nullptr;
    return context.new_session(host, host + ":" + std::to_string(port));
}

}  // namespace op
