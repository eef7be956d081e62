package objstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Errors callers decide on, with errors.Is. Each error this package returns
// for them also says, in its text, which setting to look at.
var (
	ErrNotFound    = errors.New("no such object")
	ErrCredentials = errors.New("credentials refused or missing")
	ErrNoBucket    = errors.New("no such bucket")
	ErrUnreachable = errors.New("endpoint unreachable")
	ErrClockSkew   = errors.New("clock skew")
	ErrChecksum    = errors.New("checksum mismatch")
	ErrShort       = errors.New("object shorter than the range read")
)

// classify turns an SDK error into one that names the setting to fix. op
// and key say what was being done.
func (s *Store) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return s.redact(fmt.Errorf("objstore: %s %s: %w", op, s.where(key), err))
	}
	var kind error
	var hint string
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	status := 0
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	switch {
	case code == "InvalidAccessKeyId", code == "SignatureDoesNotMatch",
		code == "InvalidToken", code == "ExpiredToken", code == "TokenRefreshRequired",
		code == "InvalidClientTokenId", code == "AuthorizationHeaderMalformed",
		// versitygw's answer (404) for an access key it does not know.
		code == "XAdminUserNotFound":
		kind = ErrCredentials
		hint = fmt.Sprintf("the server refused the credentials (%s, access key %s from %s): check %s",
			code, keyHint(s.creds.AccessKeyID), s.creds.Source, s.credSettings())
	case code == "NoSuchBucket" || op == "HeadBucket" && status == http.StatusNotFound:
		kind = ErrNoBucket
		hint = fmt.Sprintf("bucket %q does not exist at %s: check bucket in %s (or create the bucket)",
			s.cfg.Bucket, s.endpointName(), s.cfg.source())
	case code == "RequestTimeTooSkewed" || code == "RequestExpired":
		kind = ErrClockSkew
		hint = "the server says this machine's clock is too far from its own (" + code +
			"; S3 allows 15 minutes): fix the clock (enable NTP: timedatectl set-ntp true, or chrony)"
	case code == "AccessDenied" || status == http.StatusForbidden:
		kind = ErrCredentials
		hint = fmt.Sprintf("access denied to s3://%s/%s with access key %s from %s: check %s, or the key's policy on bucket %q",
			s.cfg.Bucket, s.cfg.Prefix, keyHint(s.creds.AccessKeyID), s.creds.Source, s.credSettings(), s.cfg.Bucket)
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		kind = ErrNotFound
	case isCredentialsMissing(err):
		kind = ErrCredentials
		hint = "no credentials found: set " + s.credSettings()
	case isNetError(err):
		kind = ErrUnreachable
		url, setting := s.endpoint, s.endpointSetting
		if url == "" {
			hint = fmt.Sprintf("cannot reach S3 for region %q (AWS_REGION or region in %s)", s.region, s.cfg.source())
		} else {
			hint = fmt.Sprintf("cannot reach endpoint %s (%s)", url, setting)
		}
	}
	if kind == nil {
		return s.redact(fmt.Errorf("objstore: %s %s: %w", op, s.where(key), err))
	}
	if hint == "" {
		return s.redact(fmt.Errorf("objstore: %s %s: %w", op, s.where(key), kind))
	}
	return s.redact(&Error{Op: op, Key: key, Kind: kind, msg: fmt.Sprintf("objstore: %s %s: %s", op, s.where(key), hint), Err: err})
}

// Error is a classified failure: Kind is one of the Err* sentinels
// (errors.Is matches it), Err the SDK's error underneath.
type Error struct {
	Op, Key string
	Kind    error
	msg     string
	Err     error
}

func (e *Error) Error() string {
	return e.msg + ": " + e.Err.Error()
}

// Unwrap gives both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

func (s *Store) where(key string) string {
	if key == "" {
		return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix
	}
	return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix + key
}

func (s *Store) endpointName() string {
	if s.endpoint != "" {
		return s.endpoint + " (" + s.endpointSetting + ")"
	}
	return "AWS region " + s.region
}

func (s *Store) credSettings() string {
	switch {
	case s.cfg.AccessKeyID != "":
		return "access_key_id and secret_access_key in " + s.cfg.source()
	case s.cfg.Profile != "":
		return "profile " + s.cfg.Profile + " (profile in " + s.cfg.source() + ") in the shared config and credentials files"
	}
	return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE and the shared config files, " +
		"or access_key_id and secret_access_key in " + s.cfg.source()
}

func isCredentialsMissing(err error) bool {
	// The SDK says so only in text ("failed to retrieve credentials",
	// "failed to refresh cached credentials").
	m := err.Error()
	return strings.Contains(m, "retrieve credentials") || strings.Contains(m, "refresh cached credentials")
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return false // the server answered
	}
	return errors.As(err, &ne)
}

// redact removes the secret key and session token from an error's text, in
// case a server or a layer below echoes them. What the classified errors
// print never contains them; this is the safety net.
func (s *Store) redact(err error) error {
	secrets := []string{s.creds.SecretAccessKey, s.creds.SessionToken, s.cfg.SecretAccessKey, s.cfg.SessionToken}
	msg := err.Error()
	dirty := false
	for _, x := range secrets {
		if x != "" && strings.Contains(msg, x) {
			dirty = true
		}
	}
	if !dirty {
		return err
	}
	for _, x := range secrets {
		if x != "" {
			msg = strings.ReplaceAll(msg, x, redacted)
		}
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
