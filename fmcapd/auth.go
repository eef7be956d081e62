package fmcapd

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
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
		return "local", nil
	}
	return "", errors.New("no client certificate and no bearer token")
}
