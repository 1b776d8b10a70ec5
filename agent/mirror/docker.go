package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
)

// DockerDaemonJSON merges mirror into a Docker daemon.json (existing may be
// empty) and returns the result. Every other key is kept, in its order and
// with its value. The mirror goes first in "registry-mirrors" unless it is
// already listed.
//
// Docker consults registry-mirrors for Docker Hub images only ("Only the
// central Hub can be mirrored", Docker docs, "Mirror the Docker Hub
// library"), and a request from it may carry no ?ns= parameter, so the
// agent should read a missing ns as docker.io.
//
// A plain-HTTP mirror also needs "insecure-registries", except on loopback:
// Docker treats 127.0.0.0/8 and ::1 as insecure registries by default
// (Engine API, RegistryServiceConfig.InsecureRegistryCIDRs), so shoal's
// default mirror adds nothing there.
//
// When nothing changes, existing is returned as is, so callers can compare
// bytes to skip a write and a daemon restart.
func DockerDaemonJSON(existing []byte, mirror string) ([]byte, error) {
	endpoint, host, err := parseMirror(mirror)
	if err != nil {
		return nil, err
	}
	doc, err := parseObject(existing)
	if err != nil {
		return nil, fmt.Errorf("daemon.json: %w", err)
	}
	changed := false

	mirrors, err := doc.strings("registry-mirrors")
	if err != nil {
		return nil, fmt.Errorf("daemon.json: %w", err)
	}
	if !slices.ContainsFunc(mirrors, func(m string) bool { return strings.TrimRight(strings.ToLower(m), "/") == endpoint }) {
		doc.set("registry-mirrors", append([]string{endpoint}, mirrors...))
		changed = true
	}

	if strings.HasPrefix(endpoint, "http://") && !isLoopback(host) {
		insecure, err := doc.strings("insecure-registries")
		if err != nil {
			return nil, fmt.Errorf("daemon.json: %w", err)
		}
		if !slices.Contains(insecure, host) {
			doc.set("insecure-registries", append(insecure, host))
			changed = true
		}
	}
	if !changed {
		return existing, nil
	}
	return doc.marshal()
}

// isLoopback reports whether host[:port] names a loopback address.
func isLoopback(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		h = strings.Trim(hostport, "[]")
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// object is a JSON object that remembers its key order.
type object struct {
	keys   []string
	values map[string]json.RawMessage
}

// parseObject reads a JSON object; empty input is an empty object.
func parseObject(b []byte) (*object, error) {
	o := &object{values: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(b)) == 0 {
		return o, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // inside an object, a token here is always a key
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		if _, dup := o.values[key]; dup {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		o.keys = append(o.keys, key)
		o.values[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return o, nil
}

// strings decodes key as a list of strings; a missing key is an empty list.
func (o *object) strings(key string) ([]string, error) {
	raw, ok := o.values[key]
	if !ok {
		return nil, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, fmt.Errorf("%q: want a list of strings: %w", key, err)
	}
	return ss, nil
}

// set replaces key's value, appending the key if it is new.
func (o *object) set(key string, v []string) {
	raw, _ := json.Marshal(v) // a []string always marshals
	if _, ok := o.values[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.values[key] = raw
}

// marshal writes the object indented, keys in their original order.
func (o *object) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.values[k])
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
