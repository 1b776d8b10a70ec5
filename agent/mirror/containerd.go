package mirror

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Options tunes the generated containerd configuration.
type Options struct {
	// Capabilities of the mirror's [host] entry. Default: pull and resolve,
	// the "private mirror" row of containerd's capability table
	// (docs/hosts.md): trusted to turn tags into digests, never pushed to.
	Capabilities []string
	// Force lets WriteContainerd replace a hosts.toml that differs from the
	// generated one (the old file is kept as hosts.toml.shoal-backup), and
	// write a hosts.toml into a directory holding Docker-style certificate
	// files. Without Force both are refused. Certificate files are never
	// touched; a generated hosts.toml names them so containerd still uses
	// them.
	Force bool
}

// certFiles are Docker-style certificate files found in a host directory.
// containerd reads them only while the directory has no hosts.toml
// (docs/hosts.md, "Support for Docker's Certificate File Pattern"), so a
// hosts.toml written beside them must name them itself to keep them used.
type certFiles struct {
	ca     []string    // *.crt: CA certificates
	client [][2]string // *.cert and their *.key (key "" when absent)
}

func (c certFiles) empty() bool { return len(c.ca) == 0 && len(c.client) == 0 }

// ContainerdHostsTOML returns the hosts.toml that makes containerd try the
// mirror first for images from upstream, falling back to upstream itself
// when the mirror fails.
//
// The format follows containerd's docs/hosts.md: `server` is the upstream,
// tried after every [host] entry; for docker.io it is
// https://registry-1.docker.io, the API endpoint behind the docker.io
// namespace. For the _default namespace there is no server line: containerd
// then falls back to each image's own registry. Because the mirror is not
// the upstream, containerd adds ?ns=<upstream> to every request it sends
// there, which is how the agent knows which registry an image belongs to.
func ContainerdHostsTOML(upstream, mirror string, opts Options) ([]byte, error) {
	return hostsTOML(upstream, mirror, opts, certFiles{})
}

func hostsTOML(upstream, mirror string, opts Options, certs certFiles) ([]byte, error) {
	ns, err := normalizeUpstream(upstream)
	if err != nil {
		return nil, err
	}
	endpoint, mirrorHost, err := parseMirror(mirror)
	if err != nil {
		return nil, err
	}
	if ns == mirrorHost {
		return nil, fmt.Errorf("upstream %q is the mirror itself: %w", upstream, ErrInvalid)
	}
	caps := opts.Capabilities
	if len(caps) == 0 {
		caps = []string{"pull", "resolve"}
	}
	for _, c := range caps {
		if !slices.Contains([]string{"pull", "resolve", "push"}, c) {
			return nil, fmt.Errorf("capability %q: %w: want pull, resolve or push", c, ErrInvalid)
		}
	}

	var b bytes.Buffer
	b.WriteString("# Written by shoal (shoal configure containerd).\n")
	if ns == DefaultNamespace {
		b.WriteString("# Every registry without its own hosts.toml is pulled through the local shoal\n")
		b.WriteString("# agent first; containerd falls back to the image's own registry.\n")
	} else {
		fmt.Fprintf(&b, "# Images from %s are pulled through the local shoal agent first;\n", ns)
		b.WriteString("# containerd falls back to the server below when the agent fails.\n")
		fmt.Fprintf(&b, "server = %s\n", tomlString(serverURL(ns)))
	}
	if !certs.empty() {
		b.WriteString("# Certificate files that were in this directory before shoal wrote it:\n")
		b.WriteString("# containerd ignores them once a hosts.toml exists, so they are named here.\n")
		if len(certs.ca) > 0 {
			fmt.Fprintf(&b, "ca = %s\n", tomlStrings(certs.ca))
		}
		if len(certs.client) > 0 {
			pairs := make([]string, len(certs.client))
			for i, p := range certs.client {
				pairs[i] = tomlStrings(p[:])
			}
			fmt.Fprintf(&b, "client = [%s]\n", strings.Join(pairs, ", "))
		}
	}
	fmt.Fprintf(&b, "\n[host.%s]\n", tomlString(endpoint))
	fmt.Fprintf(&b, "  capabilities = %s\n", tomlStrings(caps))
	return b.Bytes(), nil
}

// serverURL is the upstream API endpoint for a registry host namespace.
func serverURL(ns string) string {
	if ns == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + ns
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlStrings renders ss as a TOML array of basic strings.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
