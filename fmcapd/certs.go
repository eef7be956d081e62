package fmcapd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/fsmode"
)

// CA is a certificate authority made for a test or a demo.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a self-signed CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue makes a certificate for name signed by ca: a server's (hosts: its
// addresses and names) or, with no hosts, a client's; valid from
// notBefore to notAfter. It returns the certificate and key as PEM.
func (ca *CA) Issue(name string, hosts []string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	if len(hosts) == 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// WriteDemoPKI writes, into dir, a CA (ca.pem), a server certificate for
// hosts (server.pem, server-key.pem) and a client certificate named client
// (client.pem, client-key.pem), each valid for a year: what `fmcapd certs`
// makes for a demo or a test. Keys are written 0600, certificates 0644.
func WriteDemoPKI(dir string, hosts []string, client string) error {
	if err := os.MkdirAll(dir, fsmode.Dir); err != nil {
		return err
	}
	ca, err := NewCA("fmcap demo CA")
	if err != nil {
		return err
	}
	now := time.Now()
	sc, sk, err := ca.Issue(hosts[0], hosts, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		return err
	}
	cc, ck, err := ca.Issue(client, nil, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{"ca.pem", ca.PEM, 0o644}, {"server.pem", sc, 0o644}, {"server-key.pem", sk, 0o600}, {"client.pem", cc, 0o644}, {"client-key.pem", ck, 0o600}} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.b, atomicfile.Options{Mode: f.mode}); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}
