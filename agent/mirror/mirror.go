// Package mirror writes the configuration that points container runtimes at
// the local shoal agent: containerd's hosts.toml files (one per upstream
// registry, or _default for all of them), a check of containerd's
// config.toml for the settings that silently disable those files, and
// Docker's daemon.json registry-mirrors.
//
// The generators are pure functions of their inputs; WriteContainerd is the
// only code that touches the filesystem, and it never replaces a file it did
// not write unless told to.
package mirror

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

const (
	// DefaultMirror is the agent's registry endpoint as the runtimes on the
	// same host reach it: plain HTTP on loopback.
	DefaultMirror = "http://127.0.0.1:5000"

	// DefaultNamespace is containerd's fallback registry host namespace: a
	// hosts.toml under it applies to every registry that has no directory
	// of its own (containerd docs/hosts.md, "Registry Host Namespace").
	DefaultNamespace = "_default"

	// CertsDir is the conventional containerd hosts directory (the value
	// containerd's docs give config_path), relative to the filesystem root.
	CertsDir = "/etc/containerd/certs.d"
)

// ErrInvalid marks an upstream or mirror address that cannot be used.
var ErrInvalid = errors.New("invalid address")

// normalizeUpstream validates a registry host namespace such as "docker.io",
// "registry.example.com:5000" or "_default" and returns it lowercased.
func normalizeUpstream(upstream string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(upstream))
	if u == DefaultNamespace {
		return u, nil
	}
	if !validHostPort(u) {
		return "", fmt.Errorf("upstream %q: %w: want a registry host[:port] such as docker.io, or %s", upstream, ErrInvalid, DefaultNamespace)
	}
	return u, nil
}

// parseMirror validates the mirror endpoint and returns it as
// scheme://host[:port] together with its host[:port].
func parseMirror(mirror string) (endpoint, host string, err error) {
	u, err := url.Parse(strings.TrimSpace(mirror))
	if err != nil {
		return "", "", fmt.Errorf("mirror %q: %w: %w", mirror, ErrInvalid, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("mirror %q: %w: want http://host:port or https://host:port", mirror, ErrInvalid)
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("mirror %q: %w: want scheme://host[:port] with no path, query or credentials", mirror, ErrInvalid)
	}
	host = strings.ToLower(u.Host)
	return u.Scheme + "://" + host, host, nil
}

// validHostPort accepts a lowercase DNS name or IPv4 address, or a bracketed
// IPv6 address, with an optional port: the shape of a registry host
// namespace, and safe as a directory name.
func validHostPort(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[:end+1], s[end+1:]
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return false
			}
			port = port[1:]
			if port == "" {
				return false
			}
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if port == "" {
			return false
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || !isDigits(port) {
			return false
		}
	}
	if strings.HasPrefix(host, "[") {
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		return err == nil && addr.Is6() && addr.Zone() == ""
	}
	if host == "" || strings.Trim(host, ".-") != host || strings.Contains(host, "..") {
		return false
	}
	for _, r := range host {
		if !isDigit(r) && !(r >= 'a' && r <= 'z') && r != '.' && r != '-' {
			return false
		}
	}
	return true
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isDigits(s string) bool {
	for _, r := range s {
		if !isDigit(r) {
			return false
		}
	}
	return s != ""
}
