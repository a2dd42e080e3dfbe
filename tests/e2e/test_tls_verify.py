#!/usr/bin/env python3
"""Upstream TLS is always verified: an unknown CA or a certificate for another name is
refused with 502 naming the reason (and nothing is sent); IP-literal targets are matched
against the certificate's IP SANs (IPv4 and IPv6); the trust store is -ca-file, else
SSL_CERT_FILE / SSL_CERT_DIR, else the system bundle (first match wins); SNI is sent for
names. The bundle is read on the first upstream TLS connection: one whose certificates do
not parse is a 502 naming it (a file with no PEM certificate at all is refused at
start-up: test_cli.py). New connections to an upstream resume its TLS session.
A target's trailing dot ("localhost.") is left out of SNI and of the name check.
The subject's CN counts only in a certificate without a subjectAltName.
A wildcard needs two labels after it ("*.test" names nothing).

Runs against either TLS backend (OP_TLS, set by ctest: openssl or mbedtls); the reasons
are worded the same by both."""
import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import WINDOWS, ProxyTestCase, Resp, certs, leaf_cert, main, wait_until  # noqa: E402

# mbedTLS 2.28 speaks TLS 1.2 at most; OpenSSL and the test upstreams speak 1.3.
EXPECTED_VERSION = 'TLSv1.2' if os.environ.get('OP_TLS') == 'mbedtls' else 'TLSv1.3'


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


class Verification(ProxyTestCase):
    def refused(self, proxy, up, host='a.example.test', reason=None):
        r = self.get(proxy, '/v1/models', host=host)
        err = self.assertJsonError(r, 502)
        self.assertEqual(err['code'], 'upstream_tls_error', err)
        if reason:
            self.assertIn('certificate verify failed: ' + reason, err['message'])
        self.assertEqual(up.request_count, 0, 'a request was sent over an unverified connection')
        self.assertTrue(wait_until(lambda: up.tls_errors, 3) or up.accept_count == 0,
                        'the upstream saw no failed handshake')

    def accepted(self, proxy, up, host='a.example.test'):
        r = self.get(proxy, '/v1/models', host=host)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(up.requests[-1].target, '/v1/models')

    def test_trusted_ca_ip_and_name(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('l', 'localhost:%d' % up.port)))
        self.accepted(p, up)
        self.assertIsNone(up.conns[-1].sni, 'an IP literal was sent as SNI (RFC 6066 forbids it)')
        self.accepted(p, up, host='l.example.test')
        self.assertEqual(up.conns[-1].sni, 'localhost')
        self.assertEqual(up.requests[-1].header('Host'), 'localhost:%d' % up.port)
        self.assertEqual(up.conns[-1].tls_version, EXPECTED_VERSION)

    def test_unknown_ca_is_502(self):
        up = self.start_upstream(cert='other_server')
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('l', 'localhost:%d' % up.port), ('g', good)))
        self.refused(p, up, reason='unable to get local issuer certificate')
        self.refused(p, up, host='l.example.test', reason='unable to get local issuer certificate')
        self.accepted(p, good, host='g.example.test')

    def test_root_in_the_middle_of_a_large_bundle(self):
        # The test CA between two halves of the system bundle (Debian's 150 roots): the
        # small mbedTLS build keeps such a bundle as an index and parses only the anchors
        # a chain names, per handshake.
        system = '/etc/ssl/certs/ca-certificates.crt'
        if not os.path.isfile(system):
            self.skipTest(system + ' is missing (Debian: the ca-certificates package)')
        with open(system) as f:
            blocks = f.read().split('-----END CERTIFICATE-----')
        blocks = [b + '-----END CERTIFICATE-----\n' for b in blocks if '-----BEGIN' in b]
        with open(certs().ca) as f:
            ours = f.read()
        half = len(blocks) // 2
        bundle = os.path.join(certs().dir, 'large-bundle-%d.pem' % os.getpid())
        with open(bundle, 'w') as f:
            f.write(''.join(blocks[:half]) + ours + ''.join(blocks[half:]))
        self.addCleanup(os.remove, bundle)
        good = self.start_upstream()
        untrusted = self.start_upstream(cert='other_server')
        p = self.start_proxy(self.targets(('g', good), ('u', untrusted)), ca_file=bundle)
        self.accepted(p, good, host='g.example.test')
        self.refused(p, untrusted, host='u.example.test', reason='unable to get local issuer certificate')

    def test_wrong_name_is_502(self):
        up = self.start_upstream(cert='wrong')
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('l', 'localhost:%d' % up.port), ('g', good)))
        self.refused(p, up, reason='IP address mismatch')  # IP 127.0.0.1 is not in the certificate
        self.refused(p, up, host='l.example.test', reason='hostname mismatch')  # nor is the name localhost
        self.accepted(p, good, host='g.example.test')

    def test_an_upstream_refusing_the_handshake_is_named_by_its_alert(self):
        # A TLS 1.2 server that wants a client certificate (the proxy has none) sends a
        # fatal alert and closes: the alert is the reason given, not the EPIPE of our
        # next write (audit 8 d7: "Broken pipe", mostly on the mbedTLS build).
        up = self.start_upstream()
        up.ctx.verify_mode = ssl.CERT_REQUIRED
        up.ctx.load_verify_locations(certs().ca)
        up.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        p = self.start_proxy(self.targets(('l', 'localhost:%d' % up.port)))
        for _ in range(3):
            err = self.assertJsonError(self.get(p, '/v1/models', host='l.example.test'), 502)
            self.assertEqual(err['code'], 'upstream_tls_error', err)
            if not WINDOWS:  # (not run there: whether Wine keeps the alert readable after the reset)
                self.assertIn('alert handshake failure', err['message'])
        self.assertEqual(up.request_count, 0)

    def test_ipv6_literal_is_matched_against_ip_sans(self):
        if not ipv6_loopback_available():
            self.skipTest('::1 is not available here')
        good = self.start_upstream(host='::1')              # IP:::1 among its SANs
        wrong = self.start_upstream(host='::1', cert='wrong')  # DNS:wrong.example only
        p = self.start_proxy(self.targets(('g', good), ('w', wrong)))
        self.accepted(p, good, host='g.example.test')
        self.assertIsNone(good.conns[-1].sni, 'an IP literal was sent as SNI (RFC 6066 forbids it)')
        self.refused(p, wrong, host='w.example.test', reason='IP address mismatch')

    def test_trailing_dot_is_left_out_of_sni_and_the_name_check(self):
        # "localhost." is the same host as "localhost": RFC 6066 section 3 sends SNI without
        # the dot, and the certificate's DNS:localhost matches it (as in Go and curl). The
        # CONNECT request and the Host field keep the name as written. The name is never
        # resolved: the CONNECT proxy sends every tunnel to 127.0.0.1.
        good = self.start_upstream()
        wrong = self.start_upstream(cert='wrong')
        cp = self.start_connect_proxy(any_name=True)
        p = self.start_proxy(self.targets(('d', 'localhost.:%d' % good.port), ('w', 'localhost.:%d' % wrong.port))
                             + ['-upstream-proxy', cp.url])
        self.accepted(p, good, host='d.example.test')
        self.assertEqual(good.conns[-1].sni, 'localhost')
        self.assertEqual(good.requests[-1].header('Host'), 'localhost.:%d' % good.port)
        self.assertIn('localhost.:%d' % good.port, cp.connects)
        self.refused(p, wrong, host='w.example.test', reason='hostname mismatch')

    def test_wildcard_needs_two_labels_after_it(self):
        # "*.test" would stand for every name under a top-level domain: refused, as by
        # OpenSSL, in a subjectAltName and in the CN of a certificate without one alike;
        # "*.example.test" covers one label to its left.
        tld = self.start_upstream(cert=leaf_cert('wild_tld', 'wild', 'DNS:*.test'))
        local = self.start_upstream(cert=leaf_cert('wild_localhost', 'wild', 'DNS:*.localhost'))
        cn_tld = self.start_upstream(cert=leaf_cert('wild_tld_cn', '*.test', None))
        two = self.start_upstream(cert=leaf_cert('wild_two_labels', 'wild', 'DNS:*.example.test'))
        two_deep = self.start_upstream(cert='wild_two_labels')
        cp = self.start_connect_proxy(any_name=True)
        p = self.start_proxy(self.targets(('t', 'example.test:%d' % tld.port), ('l', 'a.localhost:%d' % local.port),
                                          ('c', 'example.test:%d' % cn_tld.port),
                                          ('w', 'a.example.test:%d' % two.port),
                                          ('x', 'a.b.example.test:%d' % two_deep.port))
                             + ['-upstream-proxy', cp.url])
        self.refused(p, tld, host='t.example.test', reason='hostname mismatch')
        self.refused(p, local, host='l.example.test', reason='hostname mismatch')
        self.refused(p, cn_tld, host='c.example.test', reason='hostname mismatch')
        self.accepted(p, two, host='w.example.test')
        self.refused(p, two_deep, host='x.example.test', reason='hostname mismatch')

    def test_subject_cn_counts_only_without_subject_alt_names(self):
        # RFC 6125 6.4.4: a certificate with a subjectAltName is matched against it alone,
        # whatever its types (here an address or a URI and no DNS name at all), as Go
        # does; only a certificate without one is matched against its CN.
        ip_san = self.start_upstream(cert=leaf_cert('cn_and_ip_san', 'localhost', 'IP:127.0.0.1'))
        uri_san = self.start_upstream(cert=leaf_cert('cn_and_uri_san', 'localhost', 'URI:https://svc.example/'))
        cn_only = self.start_upstream(cert=leaf_cert('cn_only', 'localhost', None))
        p = self.start_proxy(self.targets(('i', 'localhost:%d' % ip_san.port), ('u', 'localhost:%d' % uri_san.port),
                                          ('c', 'localhost:%d' % cn_only.port)))
        self.refused(p, ip_san, host='i.example.test', reason='hostname mismatch')
        self.refused(p, uri_san, host='u.example.test', reason='hostname mismatch')
        self.accepted(p, cn_only, host='c.example.test')

    def test_new_connections_resume_the_tls_session(self):
        # Each answer closes its connection, so every request needs a new handshake.
        up = self.start_upstream(lambda req: Resp(200, body=b'{}', close=True))
        p = self.start_proxy(self.targets(('a', up), ('l', 'localhost:%d' % up.port)))
        for host in ('a.example.test', 'l.example.test'):
            for _ in range(3):
                r = self.get(p, '/v1/models', host=host)
                self.assertEqual(r.status, 200, r)
        self.assertEqual(up.accept_count, 6)
        # One full handshake per host:port, whatever the name for the same port: the
        # cache is keyed by the target as written (127.0.0.1 and localhost differ).
        reused = [c.session_reused for c in up.conns]
        self.assertEqual(reused, [False, True, True, False, True, True], reused)
        self.assertEqual({c.tls_version for c in up.conns}, {EXPECTED_VERSION})

    def test_ssl_cert_file_is_used_without_ca_file(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=None, env={'SSL_CERT_FILE': certs().ca})
        self.accepted(p, up)

    def test_ssl_cert_dir_is_used_without_ca_file(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=None, env={'SSL_CERT_DIR': certs().ca_dir})
        self.accepted(p, up)

    def test_ssl_cert_dir_may_list_directories(self):
        # As OpenSSL and Go read it: ':'-separated (';' on Windows); a missing one is skipped.
        sep = ';' if WINDOWS else ':'
        up = self.start_upstream()
        missing = os.path.join(os.path.dirname(certs().ca_dir), 'no-such-dir')
        p = self.start_proxy(self.targets(('a', up)), ca_file=None,
                             env={'SSL_CERT_DIR': missing + sep + certs().ca_dir})
        self.accepted(p, up)

    def test_ca_file_wins_over_ssl_cert_file(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=certs().ca, env={'SSL_CERT_FILE': certs().other_ca})
        self.accepted(p, up)
        p2 = self.start_proxy(self.targets(('a', up)), ca_file=certs().other_ca, env={'SSL_CERT_FILE': certs().ca})
        before = up.request_count
        r = self.get(p2, '/v1/models')
        self.assertJsonError(r, 502)
        self.assertEqual(up.request_count, before)

    def test_bundle_with_no_usable_certificate_is_502_naming_it(self):
        bad = os.path.join(certs().dir, 'broken-bundle-%d.pem' % os.getpid())
        with open(bad, 'w') as f:
            f.write('-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n')
        self.addCleanup(os.unlink, bad)
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=bad)
        for _ in range(2):  # the same answer each time, not only on the first connection
            r = self.get(p, '/v1/models')
            err = self.assertJsonError(r, 502)
            self.assertEqual(err['code'], 'upstream_tls_error', err)
            self.assertIn('-ca-file %s holds no usable PEM certificates' % bad, err['message'])
        self.assertEqual(up.request_count, 0, 'a request was sent without a trust store')
        self.assertTrue(wait_until(lambda: 'holds no usable PEM certificates' in p.stderr(), 3), p.stderr())

    def test_system_store_does_not_trust_the_test_ca(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=None)
        self.refused(p, up)


if __name__ == '__main__':
    main()
