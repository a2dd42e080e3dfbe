#!/usr/bin/env python3
"""Upstream TLS is always verified: an unknown CA or a certificate for another name is
refused with 502 (and nothing is sent); the trust store is -ca-file, else SSL_CERT_FILE /
SSL_CERT_DIR, else the system bundle (first match wins); SNI is sent for names. The
bundle is read on the first upstream TLS connection: one whose certificates do not parse
is a 502 naming it (a file with no PEM certificate at all is refused at start-up:
test_cli.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, certs, main, wait_until  # noqa: E402


class Verification(ProxyTestCase):
    def refused(self, proxy, up, host='a.example.test'):
        r = self.get(proxy, '/v1/models', host=host)
        self.assertJsonError(r, 502)
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

    def test_unknown_ca_is_502(self):
        up = self.start_upstream(cert='other_server')
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('l', 'localhost:%d' % up.port), ('g', good)))
        self.refused(p, up)
        self.refused(p, up, host='l.example.test')
        self.accepted(p, good, host='g.example.test')

    def test_wrong_name_is_502(self):
        up = self.start_upstream(cert='wrong')
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('l', 'localhost:%d' % up.port), ('g', good)))
        self.refused(p, up)                        # IP 127.0.0.1 is not in the certificate
        self.refused(p, up, host='l.example.test')  # nor is the name localhost
        self.accepted(p, good, host='g.example.test')

    def test_ssl_cert_file_is_used_without_ca_file(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=None, env={'SSL_CERT_FILE': certs().ca})
        self.accepted(p, up)

    def test_ssl_cert_dir_is_used_without_ca_file(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), ca_file=None, env={'SSL_CERT_DIR': certs().ca_dir})
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
