package fmcapd

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// identify names the client of r, or says why it is refused.
func (s *Server) identify(r *http.Request) (string, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if s.cfg.clientCA == nil {
			return "", errors.New("a client certificate, but no client_ca to check it against")
		}
		leaf := r.TLS.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: s.cfg.clientCA, Intermediates: inter,
			CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return "", errors.New("client certificate refused: " + err.Error())
		}
		return "cert:" + leaf.Subject.CommonName, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return "", errors.New("Authorization: only Bearer tokens")
		}
		sum := sha256.Sum256([]byte(t))
		for _, k := range s.cfg.tokens {
			if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
				return "token:" + k.name, nil
			}
		}
		return "", errors.New("bearer token not accepted")
	}
	if s.cfg.clientCA == nil && len(s.cfg.tokens) == 0 && s.cfg.loopback {
		// Local mode: this host's users only. A web page elsewhere can make
		// a browser on this host ask for a name it points at 127.0.0.1 (DNS
		// rebinding): such a request names its own host, not a loopback one.
		if !loopbackHost(r.Host) || !loopbackHost(r.RemoteAddr) {
			return "", errors.New("local mode (no client_ca, no tokens) answers requests to and from a loopback address only")
		}
		return "local", nil
	}
	return "", errors.New("no client certificate and no bearer token")
}

// loopbackHost says whether host (HOST or HOST:PORT) is localhost or a
// loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
